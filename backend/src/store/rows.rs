//! Runs read from rows, by sqlx (either engine) and by rusqlite (SQLite's
//! writer thread).

use super::engine::Column;
use super::{RunRow, StoreError, StoreResult};

/// Columns of a run row, in the order `run_from_row` reads them.
pub(super) const RUN_COLUMNS: &str = "id, user_id, script_id, script_version, handler, trigger_kind, trigger_spec, \
     payload, status, attempt, first_run_id, worker_id, heartbeat_at, queued_at, started_at, finished_at, exit_code, \
     duration_ms, error, stdout_truncated, stderr_truncated, output_cap, not_before, cause_event_id, chain_depth, \
     wait_reason, replay_of";

/// A run from a row holding `RUN_COLUMNS`.
pub(super) fn run_from_row(row: &impl RunColumns) -> StoreResult<RunRow> {
    let payload = row.text("payload")?;
    Ok(RunRow {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        script_id: row.text("script_id")?,
        script_version: row.int("script_version")?,
        handler: row.maybe_text("handler")?,
        trigger_kind: row
            .text("trigger_kind")?
            .parse()
            .map_err(StoreError::Corrupt)?,
        trigger_spec: row.text("trigger_spec")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("run payload: {e}")))?,
        status: row.text("status")?.parse().map_err(StoreError::Corrupt)?,
        attempt: row.int("attempt")?,
        first_run_id: row.maybe_text("first_run_id")?,
        worker_id: row.maybe_text("worker_id")?,
        heartbeat_at: row.maybe_int("heartbeat_at")?,
        queued_at: row.int("queued_at")?,
        started_at: row.maybe_int("started_at")?,
        finished_at: row.maybe_int("finished_at")?,
        exit_code: row.maybe_int("exit_code")?,
        duration_ms: row.maybe_int("duration_ms")?,
        error: row.maybe_text("error")?,
        stdout_truncated: row.int("stdout_truncated")? != 0,
        stderr_truncated: row.int("stderr_truncated")? != 0,
        output_cap: row.maybe_int("output_cap")?,
        not_before: row.maybe_int("not_before")?,
        cause_event_id: row.maybe_text("cause_event_id")?,
        chain_depth: row.int("chain_depth")?,
        wait_reason: row
            .maybe_text("wait_reason")?
            .map(|reason| reason.parse())
            .transpose()
            .map_err(StoreError::Corrupt)?,
        replay_of: row.maybe_text("replay_of")?,
    })
}

/// A run from a sqlx row holding `RUN_COLUMNS`.
pub(super) fn run_from_sqlx<R>(row: &R) -> StoreResult<RunRow>
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    String: Column<R::Database>,
    i64: Column<R::Database>,
{
    run_from_row(&SqlxRow(row))
}

/// A result row's columns by name, whichever driver read it.
pub(super) trait RunColumns {
    fn text(&self, column: &str) -> StoreResult<String>;
    fn maybe_text(&self, column: &str) -> StoreResult<Option<String>>;
    fn int(&self, column: &str) -> StoreResult<i64>;
    fn maybe_int(&self, column: &str) -> StoreResult<Option<i64>>;
}

/// A sqlx row of either engine.
struct SqlxRow<'a, R>(&'a R);

impl<R> RunColumns for SqlxRow<'_, R>
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    String: Column<R::Database>,
    i64: Column<R::Database>,
{
    fn text(&self, column: &str) -> StoreResult<String> {
        Ok(self.0.try_get(column)?)
    }
    fn maybe_text(&self, column: &str) -> StoreResult<Option<String>> {
        Ok(self.0.try_get(column)?)
    }
    fn int(&self, column: &str) -> StoreResult<i64> {
        Ok(self.0.try_get(column)?)
    }
    fn maybe_int(&self, column: &str) -> StoreResult<Option<i64>> {
        Ok(self.0.try_get(column)?)
    }
}
