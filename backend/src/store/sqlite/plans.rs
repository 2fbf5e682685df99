//! The SQLite store's statements use the indexes they are written for:
//! checked on SQLite's query plans, so an index added or dropped later
//! cannot make a claim or a listing walk the run history unnoticed.

use std::path::Path;

use rusqlite::Connection;

use super::writer_jobs::SQL;
use crate::store::runs::list_runs_sql;

/// The lines of SQLite's query plan for `sql` (parameters written `?` or
/// `$n`), on the migrated database at `path`.
pub(crate) fn plan(path: &Path, sql: &str) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let sql = sql.replace('$', "?");
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    // Unbound parameters are NULL, which is all a plan needs.
    let mut rows = statement.raw_query();
    let mut lines = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        lines.push(row.get::<_, String>("detail").unwrap());
    }
    lines
}

/// Listing a user's queued or running runs reads only the runs in that
/// state (their partial indexes), not the user's whole history; other
/// statuses still bind the status and use the user's index.
#[tokio::test]
async fn runs_by_status_are_read_from_the_runs_in_that_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roost.db");
    let store = super::SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for (status, index) in [
        ("queued", "runs_queued"),
        ("running", "runs_running"),
        ("failed", "runs_by_user"),
    ] {
        for script_id in [None, Some("scr_1".to_string())] {
            let filter = crate::store::RunFilter {
                status: Some(status.parse().unwrap()),
                script_id,
                limit: 10,
                ..Default::default()
            };
            let listing = list_runs_sql(&filter, super::RUNS_IN_STATE);
            let lines = plan(&path, &listing.sql);
            assert!(
                lines.iter().any(|line| line.contains(index)),
                "listing {status} runs does not use {index}; plan: {lines:#?}"
            );
        }
    }
    drop(store);
}

/// A claim runs on every run, with the whole run history in the table:
/// it must read only the queued and running runs (their partial
/// indexes) and find rows by id, never walk runs or an index of all
/// runs.
#[tokio::test]
async fn claims_read_only_the_queued_and_running_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roost.db");
    let store = super::SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    // The pick reads the queued runs' index in order, then counts each
    // candidate's script's running runs in theirs.
    for (sql, index) in [
        (&SQL.claim_queued, "runs_queued"),
        (&SQL.script_running, "runs_running (script_id=?)"),
    ] {
        let lines = plan(&path, sql);
        let walks: Vec<&String> = lines
            .iter()
            .filter(|line| line.starts_with("SCAN") && !line.ends_with("USING INDEX runs_queued"))
            .collect();
        assert!(
            walks.is_empty(),
            "the pick walks {walks:?}; plan: {lines:#?}"
        );
        assert!(
            lines.iter().any(|line| line.contains(index)),
            "the pick does not use {index}; plan: {lines:#?}"
        );
        assert!(
            !lines.iter().any(|line| line.contains("TEMP B-TREE")),
            "the pick sorts; plan: {lines:#?}"
        );
    }
    // The claimed run is then started, and read back, by its id.
    for (name, sql) in [
        ("start", &SQL.start_run),
        ("read back", &SQL.read_run),
        ("finish", &SQL.finish_run),
        ("held finish", &SQL.finish_held),
        ("heartbeat", &SQL.heartbeat),
        ("partial output", &SQL.partial_output),
    ] {
        let lines = plan(&path, sql);
        assert!(
            lines.iter().all(|line| !line.starts_with("SCAN"))
                && lines.iter().any(|line| line.contains("(id=?)")),
            "{name} does not find the run by id; plan: {lines:#?}"
        );
    }
    drop(store);
}
