//! A user's runs over a window, minute by minute: how many ended in each
//! status, how many are still queued or running, and how long the ended
//! ones took (the dashboard's chart, `crate::run_stats`).
//!
//! Both statements read one user's runs through `runs_by_user (user_id,
//! queued_at)`, over the runs queued from [`LOOKBACK_MS`] before the
//! window: no index holds a user's runs by their end, and one on
//! `(user_id, finished_at)` would be written on every run's finish, the
//! writer's hottest path (docs/store-decisions.md has the measurement).
//! So a run that ended in the window more than [`LOOKBACK_MS`] after
//! it was queued is not counted: with run timeouts and retry backoffs of at
//! most 15 minutes each, only a run that also waited half an hour in a
//! backlog.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::{RunStatus, StoreError, StoreResult};

/// The width of a bucket: one minute, in milliseconds.
pub const MINUTE_MS: i64 = 60_000;

/// How long before the window the runs read may have been queued: one
/// hour.
pub const LOOKBACK_MS: i64 = 60 * MINUTE_MS;

/// Which runs to count: `user_id`'s (only `script_id`'s, if given) in
/// `[since, until)`, Unix ms. `since` should be a whole minute, so that the
/// buckets are the clock's minutes.
#[derive(Debug, Clone, Copy)]
pub struct StatsWindow<'a> {
    /// The user whose runs are counted.
    pub user_id: &'a str,
    /// Only this script's runs, if given.
    pub script_id: Option<&'a str>,
    /// Start of the first minute (inclusive).
    pub since: i64,
    /// End of the window (exclusive).
    pub until: i64,
    /// At most this many ended runs' durations are read, the most recently
    /// queued.
    pub max_durations: i64,
}

/// How many runs of a status fell in one minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MinuteCount {
    /// The minute, counted from the window's `since` (0 is the first).
    pub minute: i64,
    /// Ended runs by their status at the minute they ended (those queued
    /// at most [`LOOKBACK_MS`] before the window); queued and running ones
    /// at the minute they were queued.
    pub status: RunStatus,
    /// How many.
    pub runs: i64,
}

/// One ended run's duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EndedDuration {
    /// When it ended (Unix ms).
    pub finished_at: i64,
    /// How long it ran.
    pub duration_ms: i64,
}

/// What `RunStatsStore::runs_by_minute` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunsByMinute {
    /// Runs per minute and status; minutes and statuses without runs are
    /// left out. Counted in the database, whatever `max_durations` is.
    pub counts: Vec<MinuteCount>,
    /// Durations of the ended runs that have one, the most recently queued
    /// first.
    pub durations: Vec<EndedDuration>,
    /// Whether more ended runs had a duration than `max_durations`: the
    /// earliest queued were not read.
    pub durations_capped: bool,
}

/// Runs counted by minute, for charts.
#[async_trait]
pub trait RunStatsStore: Send + Sync {
    /// The runs of `window`, by minute and status, and the durations of
    /// those that ended in it.
    async fn runs_by_minute(&self, window: &StatsWindow<'_>) -> StoreResult<RunsByMinute>;
}

#[async_trait]
impl<DB> RunStatsStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    i64: Column<DB>,
{
    async fn runs_by_minute(&self, window: &StatsWindow<'_>) -> StoreResult<RunsByMinute> {
        let earliest = window.since.saturating_sub(LOOKBACK_MS);
        let sql = counts_sql(window.script_id.is_some());
        let mut query = sqlx::query(&sql)
            .bind(window.user_id)
            .bind(window.since)
            .bind(window.until)
            .bind(earliest);
        if let Some(script_id) = window.script_id {
            query = query.bind(script_id);
        }
        let counts = query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                Ok(MinuteCount {
                    minute: row.try_get("minute")?,
                    status: status
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("run status {status:?}")))?,
                    runs: row.try_get("n")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;

        // One row more than asked tells whether there were more.
        let sql = durations_sql(window.script_id.is_some());
        let mut query = sqlx::query(&sql)
            .bind(window.user_id)
            .bind(window.since)
            .bind(window.until)
            .bind(earliest);
        if let Some(script_id) = window.script_id {
            query = query.bind(script_id);
        }
        let cap = window.max_durations.max(0);
        let mut durations = query
            .bind(cap.saturating_add(1))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(EndedDuration {
                    finished_at: row.try_get("finished_at")?,
                    duration_ms: row.try_get("duration_ms")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let durations_capped = durations.len() as i64 > cap;
        durations.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
        Ok(RunsByMinute {
            counts,
            durations,
            durations_capped,
        })
    }
}

/// Counts by minute and status: `$1` user, `$2` since, `$3` until, `$4`
/// the earliest queued time read, `$5` script (only `by_script`). Built
/// with or without the script's term, never `($5 IS NULL OR …)`, which
/// hides the column from the planner (docs/store-decisions.md). A run
/// counts at its end, or, still queued or running (no end yet), at its
/// queueing: one range of the user's index, each run once.
pub(super) fn counts_sql(by_script: bool) -> String {
    let script = if by_script { " AND script_id = $5" } else { "" };
    format!(
        "SELECT (COALESCE(finished_at, queued_at) - $2) / {MINUTE_MS} AS minute, status, \
         COUNT(*) AS n FROM runs \
         WHERE user_id = $1 AND queued_at >= $4 AND queued_at < $3{script} \
         AND COALESCE(finished_at, queued_at) >= $2 AND COALESCE(finished_at, queued_at) < $3 \
         GROUP BY 1, 2"
    )
}

/// The ended runs' durations, the most recently queued first: as
/// `counts_sql`, then the limit. Read in the index's order, so the limit
/// stops the scan.
pub(super) fn durations_sql(by_script: bool) -> String {
    let (script, limit) = if by_script {
        (" AND script_id = $5", "$6")
    } else {
        ("", "$5")
    };
    format!(
        "SELECT finished_at, duration_ms FROM runs \
         WHERE user_id = $1 AND queued_at >= $4 AND queued_at < $3{script} \
         AND finished_at >= $2 AND finished_at < $3 AND duration_ms IS NOT NULL \
         ORDER BY queued_at DESC LIMIT {limit}"
    )
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::plans::plan;

    use super::{counts_sql, durations_sql};

    const BY_USER: &str = "runs_by_user (user_id=? AND queued_at>? AND queued_at<?)";

    /// The chart reads one user's recent runs through their index, never
    /// the whole table, and reads the durations in the index's order, so
    /// that the cap stops the reading.
    #[tokio::test]
    async fn stats_read_the_users_runs_through_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roost.db");
        let store =
            crate::store::sqlite::SqliteStore::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
        for by_script in [false, true] {
            let lines = plan(&path, &counts_sql(by_script));
            assert!(
                lines.iter().all(|line| !line.starts_with("SCAN"))
                    && lines.iter().any(|line| line.contains(BY_USER)),
                "the counts do not read the user's runs by time; plan: {lines:#?}"
            );

            let lines = plan(&path, &durations_sql(by_script));
            assert!(
                lines.iter().all(|line| !line.starts_with("SCAN"))
                    && lines.iter().any(|line| line.contains(BY_USER)),
                "the durations do not read the user's runs by time; plan: {lines:#?}"
            );
            assert!(
                !lines.iter().any(|line| line.contains("TEMP B-TREE")),
                "the durations are sorted; plan: {lines:#?}"
            );
        }
        drop(store);
    }
}
