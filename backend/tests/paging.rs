//! Every listing pages on (time, id): rows that share a millisecond, as runs
//! queued in one transaction do, are each listed exactly once.

mod support;

use std::collections::BTreeSet;

use roost::store::{AuditRow, MessageRow, NewEvent, NewRun, NewScriptVersion, TriggerRow, new_id};
use serde_json::{Value, json};
use support::{Backend, TestApp};

/// Rows per listing, all in one millisecond.
const ROWS: usize = 2_500;

/// Follows `next_cursor` from `first` to the end; returns every id listed.
async fn walk(app: &TestApp, token: &str, first: &str, field: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut path = first.to_string();
    loop {
        let (status, page) = app.get(token, &path).await;
        assert_eq!(status, 200, "{path}: {page}");
        let rows = page[field].as_array().unwrap();
        ids.extend(
            rows.iter()
                .map(|row| row["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                let sep = if first.contains('?') { '&' } else { '?' };
                path = format!("{first}{sep}cursor={cursor}");
            }
            None => return ids,
        }
    }
}

fn assert_each_once(listed: &[String], stored: &BTreeSet<String>, what: &str) {
    let unique: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "{what}: a row was listed twice");
    assert_eq!(&unique, stored, "{what}: every stored row is listed");
}

async fn rows_sharing_a_millisecond_are_each_listed_once(backend: Backend) {
    // No workers: the runs stay as queued, and the listing is all that moves.
    let app = TestApp::spawn_with(backend, |config| config.runner.workers = 0).await;
    let token = app.user("ada").await;
    let user = app.user_id(&token).await;
    let at = roost::store::now_millis();

    // Runs: one event for a script with ROWS handlers queues ROWS runs in
    // one transaction, with one `queued_at`.
    let triggers = (0..ROWS)
        .map(|n| TriggerRow {
            handler: format!("h{n}"),
            kind: roost::store::TriggerKind::Event,
            spec: "order.created".into(),
            timezone: None,
            flow: None,
        })
        .collect();
    let script = app
        .store
        .create_script_version(&NewScriptVersion {
            user_id: user.clone(),
            name: "fan-out".into(),
            component: b"\0asm".to_vec(),
            content_hash: "ab".repeat(32),
            metadata: json!({ "handlers": [], "integrations": [] }),
            triggers,
            retries: None,
            limits: None,
            caps: Default::default(),
        })
        .await
        .unwrap();
    // Outbox messages, all stamped with the same time, committed with the
    // end of the run that sent them; and audit entries likewise.
    let run = app
        .store
        .enqueue_run(&NewRun {
            user_id: user.clone(),
            script_id: script.script_id.clone(),
            script_version: 1,
            handler: Some("h0".into()),
            trigger_kind: roost::store::TriggerKind::Manual,
            trigger_spec: String::new(),
            payload: Value::Null,
            not_before: None,
        })
        .await
        .unwrap();
    let claimed = app.store.claim_run("w1", 10, &[]).await.unwrap().unwrap();
    assert_eq!(claimed.id, run.id);
    let messages: Vec<MessageRow> = (0..ROWS)
        .map(|n| MessageRow {
            id: new_id("msg"),
            user_id: user.clone(),
            script_id: script.script_id.clone(),
            run_id: run.id.clone(),
            channel: None,
            recipient: None,
            subject: None,
            body: format!("message {n}"),
            created_at: at,
        })
        .collect();
    let finish = support::succeeded_with(messages.clone());
    assert!(
        app.store
            .finish_run(&run.id, "w1", &finish, None)
            .await
            .unwrap()
    );
    let entries: Vec<AuditRow> = (0..ROWS)
        .map(|_| AuditRow {
            id: new_id("aud"),
            user_id: user.clone(),
            action: "credential.read_for_run".into(),
            integration: Some("gmail".into()),
            run_id: None,
            detail: None,
            at,
        })
        .collect();
    app.store.insert_audit(&entries).await.unwrap();

    let ingest = app
        .store
        .ingest_event(&NewEvent {
            user_id: user.clone(),
            event_id: "e1".into(),
            event_type: "order.created".into(),
            source: None,
            payload: Value::Null,
            source_run_id: None,
            chain_depth: 0,
        })
        .await
        .unwrap();
    assert_eq!(ingest.run_ids.len(), ROWS);
    let mut stored: BTreeSet<String> = ingest.run_ids.iter().cloned().collect();
    let queued = stored.clone();
    stored.insert(run.id.clone());
    let listed = walk(&app, &token, "/v1/runs?limit=7", "runs").await;
    assert_each_once(&listed, &stored, "runs");
    let listed = walk(&app, &token, "/v1/runs?limit=200&status=queued", "runs").await;
    assert_each_once(&listed, &queued, "queued runs");

    let messages: BTreeSet<String> = messages.into_iter().map(|m| m.id).collect();
    let entries: BTreeSet<String> = entries.into_iter().map(|e| e.id).collect();
    let listed = walk(&app, &token, "/v1/messages?limit=13", "messages").await;
    assert_each_once(&listed, &messages, "messages");
    let listed = walk(&app, &token, "/v1/audit?limit=11", "entries").await;
    assert_each_once(&listed, &entries, "audit");

    // A cursor this server did not give out is a 400, not an empty page.
    for path in [
        "/v1/runs?cursor=nonsense",
        "/v1/messages?cursor=",
        "/v1/audit?cursor=MTIz",
    ] {
        let (status, body) = app.get(&token, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_cursor", "{path}: {body}");
    }
}
on_both_stores!(rows_sharing_a_millisecond_are_each_listed_once);
