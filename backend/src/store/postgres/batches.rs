//! A worker's trip to PostgreSQL in few round trips: the plain finishes of
//! several runs in one statement, the runs it gives back in another, and
//! several runs claimed in one statement (docs/postgres-queue.md).

use super::PostgresStore;
use crate::store::rows::{RUN_COLUMNS, run_from_sqlx};
use crate::store::{NextClaim, RunReport, RunRow, StoreResult, TriggerKind, now_millis};

/// Records the ends of runs with no effects and no retry to queue, each if
/// it is still running under worker `$13`, at `$12`; a run a worker began
/// later than its claim gets that start. Ends of runs someone may wait on
/// are announced with the commit. Answers with the ids recorded.
const FINISH_PLAIN_SQL: &str = "WITH f AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], \
     $4::int8[], $5::text[], $6::bytea[], $7::bytea[], $8::int8[], $9::int8[], $10::int8[], $11::int8[]) \
     AS f(id, status, exit_code, duration_ms, error, stdout, stderr, stdout_truncated, stderr_truncated, \
     output_cap, started_at)), \
     done AS (UPDATE runs SET status = f.status, exit_code = f.exit_code, duration_ms = f.duration_ms, \
     error = f.error, stdout = f.stdout, stderr = f.stderr, stdout_truncated = f.stdout_truncated, \
     stderr_truncated = f.stderr_truncated, output_cap = f.output_cap, finished_at = $12, \
     started_at = COALESCE(f.started_at, runs.started_at) \
     FROM f WHERE runs.id = f.id AND runs.status = 'running' AND runs.worker_id = $13 \
     RETURNING runs.id, runs.trigger_kind), \
     announced AS (SELECT pg_notify('roost_run_ends', id) FROM done WHERE trigger_kind = ANY($14::text[])) \
     SELECT id, (SELECT COUNT(*) FROM announced) AS announced FROM done";

/// Puts the runs in `$1`, handed to worker `$2` and not begun, back on the
/// queue as they were (see `GIVE_BACK_RUN_SQL`).
const GIVE_BACK_RUNS_SQL: &str = "UPDATE runs SET status = 'queued', worker_id = NULL, heartbeat_at = NULL, \
     started_at = NULL, flow_key = NULL WHERE id = ANY($1) AND worker_id = $2 AND status = 'running'";

/// Claims runs for worker `$1` at `$2` in one statement (migration
/// 0036's `claim_runs`, docs/postgres-queue.md): up to `$5` runs, nor more
/// than a `$6`th of the queue, within every script's cap (`$3`) and key's
/// limit, passing over the users in `$4` (a JSON array).
static CLAIM_RUNS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {RUN_COLUMNS} FROM claim_runs($1, $2, $3, $4::jsonb, $5, $6)")
});

impl PostgresStore {
    /// Records the ends of `reports` (each with no effects and no retry to
    /// queue) in one statement; whether each was recorded, in order.
    pub(super) async fn finish_plain(
        &self,
        worker_id: &str,
        reports: &[&RunReport],
    ) -> StoreResult<Vec<bool>> {
        let column = |f: &dyn Fn(&RunReport) -> Option<i64>| -> Vec<Option<i64>> {
            reports.iter().map(|r| f(r)).collect()
        };
        let waited_on = [TriggerKind::Manual, TriggerKind::Http, TriggerKind::Mcp]
            .map(|kind| kind.as_str().to_string());
        let done: Vec<String> = sqlx::query_scalar(FINISH_PLAIN_SQL)
            .bind(
                reports
                    .iter()
                    .map(|r| r.run_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                reports
                    .iter()
                    .map(|r| r.finish.status.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(column(&|r| r.finish.exit_code))
            .bind(column(&|r| Some(r.finish.duration_ms)))
            .bind(
                reports
                    .iter()
                    .map(|r| r.finish.error.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                reports
                    .iter()
                    .map(|r| r.finish.stdout.as_slice())
                    .collect::<Vec<_>>(),
            )
            .bind(
                reports
                    .iter()
                    .map(|r| r.finish.stderr.as_slice())
                    .collect::<Vec<_>>(),
            )
            .bind(column(&|r| Some(i64::from(r.finish.stdout_truncated))))
            .bind(column(&|r| Some(i64::from(r.finish.stderr_truncated))))
            .bind(column(&|r| Some(r.finish.output_cap)))
            .bind(column(&|r| r.started_at))
            .bind(now_millis())
            .bind(worker_id)
            .bind(&waited_on[..])
            .fetch_all(&self.pool)
            .await?;
        Ok(reports.iter().map(|r| done.contains(&r.run_id)).collect())
    }

    /// Gives back runs handed to `worker_id` and not begun, in one statement.
    pub(super) async fn give_back(&self, worker_id: &str, run_ids: &[String]) -> StoreResult<()> {
        sqlx::query(GIVE_BACK_RUNS_SQL)
            .bind(run_ids)
            .bind(worker_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Claims up to `claim.runs` runs (its share of the queue) for
    /// `worker_id` in one statement, in queue order, within every cap
    /// (`RunQueue::claim_run`).
    pub(super) async fn claim_batch(
        &self,
        worker_id: &str,
        claim: &NextClaim,
    ) -> StoreResult<Vec<RunRow>> {
        let skip_users = serde_json::to_string(&claim.skip_users).expect("ids serialise");
        let mut runs = sqlx::query(CLAIM_RUNS_SQL.as_str())
            .bind(worker_id)
            .bind(now_millis())
            .bind(claim.per_script_limit)
            .bind(&skip_users)
            .bind(i64::try_from(claim.runs).unwrap_or(1))
            .bind(claim.workers.max(1) as f64)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(run_from_sqlx)
            .collect::<StoreResult<Vec<_>>>()?;
        runs.sort_by(|a, b| (a.queued_at, &a.id).cmp(&(b.queued_at, &b.id)));
        Ok(runs)
    }
}
