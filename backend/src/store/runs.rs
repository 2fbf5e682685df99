//! Runs as users and operators see them: queued by hand (once per
//! idempotency key), listed, read, cancelled, counted and, when their
//! worker is lost or they are old, re-queued or deleted. How workers
//! claim and finish them is the run queue's (queue.rs).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::rows::{RUN_COLUMNS, run_from_sqlx};
use super::{
    Enqueued, IdempotencyKey, NewRun, QueueDepth, ReplayFilter, ReplayOutcome, ReplayPlan,
    RunFilter, RunLogs, RunRow, RunStats, StoreError, StoreResult, new_id, now_millis,
};

/// Runs as users and operators see them.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Puts a run on the queue.
    async fn enqueue_run(&self, run: &NewRun) -> StoreResult<RunRow>;
    /// Puts a run on the queue under an idempotency key, once: the first
    /// request with `key` (or the first since an earlier use older than
    /// `since`, Unix ms) queues `run` and records the key in the same
    /// transaction; a repeat queues nothing and names the first run.
    async fn enqueue_run_once(
        &self,
        run: &NewRun,
        key: &IdempotencyKey,
        since: i64,
    ) -> StoreResult<Enqueued>;
    /// The run a request with `key` queued at or after `since`, if any.
    async fn idempotent_run(
        &self,
        user_id: &str,
        key: &IdempotencyKey,
        since: i64,
    ) -> StoreResult<Option<Enqueued>>;
    /// Forgets idempotency keys used before `before` (end of the window).
    async fn purge_idempotency_keys(&self, before: i64) -> StoreResult<u64>;
    /// Cancels a queued or running run of the user; false if it had ended.
    async fn cancel_run(&self, user_id: &str, run_id: &str) -> StoreResult<bool>;
    /// Runs whose worker stopped heart-beating before `stale_before`: put
    /// back on the queue (`requeue`), or marked failed.
    async fn requeue_stale_runs(&self, stale_before: i64, requeue: bool) -> StoreResult<u64>;
    /// One run of the user.
    async fn get_run(&self, user_id: &str, run_id: &str) -> StoreResult<Option<RunRow>>;
    /// The user's runs, newest first.
    async fn list_runs(&self, user_id: &str, filter: &RunFilter) -> StoreResult<Vec<RunRow>>;
    /// A run's captured output.
    async fn run_logs(&self, user_id: &str, run_id: &str) -> StoreResult<Option<RunLogs>>;
    /// Deletes finished runs (and handled ticks) older than `before`; returns the runs deleted.
    async fn delete_old_runs(&self, before: i64) -> StoreResult<u64>;
    /// Run counts for the operator view and metrics.
    async fn run_stats(&self, now: i64) -> StoreResult<RunStats>;
    /// How much of the queue `user_id` fills: runs queued, and bytes of
    /// payload their runs keep.
    async fn queue_depth(&self, user_id: &str) -> StoreResult<QueueDepth>;
    /// The earliest time after `now` a queued run waits for (a run at a
    /// time, or a retry's backoff), if any.
    async fn next_due(&self, now: i64) -> StoreResult<Option<i64>>;
    /// Queues again, in one transaction, the user's finished runs that
    /// `filter` matches, each new run naming its original (replay.rs); a
    /// dry run (`plan.dry_run`) says the same and queues nothing.
    async fn replay_runs(
        &self,
        user_id: &str,
        filter: &ReplayFilter,
        plan: ReplayPlan,
    ) -> StoreResult<ReplayOutcome>;
}

#[async_trait]
impl<DB> RunStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
    Vec<u8>: Column<DB>,
{
    async fn enqueue_run(&self, run: &NewRun) -> StoreResult<RunRow> {
        let sql = insert_run_sql();
        let row = bind_new_run(sqlx::query(&sql), run)
            .fetch_one(&self.pool)
            .await?;
        run_from_sqlx(&row)
    }

    async fn enqueue_run_once(
        &self,
        run: &NewRun,
        key: &IdempotencyKey,
        since: i64,
    ) -> StoreResult<Enqueued> {
        // Two tries: a first request of the same key committing meanwhile
        // makes the insert of the key fail, and the second try then finds it.
        for _ in 0..2 {
            let mut tx = self.pool.begin_with(DB::BEGIN).await?;
            let found = sqlx::query(IDEMPOTENT_LOOKUP_SQL)
                .bind(&run.user_id)
                .bind(&key.key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(found) = found {
                if let Some(repeat) = repeat_of(&found, key, since)? {
                    return Ok(repeat);
                }
                sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2")
                    .bind(&run.user_id)
                    .bind(&key.key)
                    .execute(&mut *tx)
                    .await?;
            }
            let sql = insert_run_sql();
            let row = bind_new_run(sqlx::query(&sql), run)
                .fetch_one(&mut *tx)
                .await?;
            let queued = run_from_sqlx(&row)?;
            let recorded = sqlx::query(
                "INSERT INTO idempotency_keys (user_id, idem_key, request_hash, run_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&run.user_id)
            .bind(&key.key)
            .bind(&key.request_hash)
            .bind(&queued.id)
            .bind(queued.queued_at)
            .execute(&mut *tx)
            .await;
            match recorded {
                Ok(_) => {
                    tx.commit().await?;
                    return Ok(Enqueued::New(Box::new(queued)));
                }
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(StoreError::Conflict(
            "a concurrent request with this idempotency key".into(),
        ))
    }

    async fn idempotent_run(
        &self,
        user_id: &str,
        key: &IdempotencyKey,
        since: i64,
    ) -> StoreResult<Option<Enqueued>> {
        let found = sqlx::query(IDEMPOTENT_LOOKUP_SQL)
            .bind(user_id)
            .bind(&key.key)
            .fetch_optional(&self.pool)
            .await?;
        match found {
            Some(found) => repeat_of(&found, key, since),
            None => Ok(None),
        }
    }

    async fn purge_idempotency_keys(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn cancel_run(&self, user_id: &str, run_id: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE runs SET status = 'cancelled', finished_at = $1, error = 'cancelled by the user' \
             WHERE id = $2 AND user_id = $3 AND status IN ('queued', 'running')",
        )
        .bind(now_millis())
        .bind(run_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn requeue_stale_runs(&self, stale_before: i64, requeue: bool) -> StoreResult<u64> {
        let done = if requeue {
            sqlx::query(
                // Without a debounced run's key: a newer run of the key
                // may be waiting already.
                "UPDATE runs SET status = 'queued', worker_id = NULL, heartbeat_at = NULL, started_at = NULL, \
                 flow_key = NULL WHERE status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < $1)",
            )
            .bind(stale_before)
            .execute(&self.pool)
            .await?
        } else {
            sqlx::query(
                "UPDATE runs SET status = 'failed', finished_at = $2, \
                 error = 'the worker running it stopped (node lost)' \
                 WHERE status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < $1)",
            )
            .bind(stale_before)
            .bind(now_millis())
            .execute(&self.pool)
            .await?
        };
        Ok(DB::rows_affected(&done))
    }

    async fn get_run(&self, user_id: &str, run_id: &str) -> StoreResult<Option<RunRow>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE user_id = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(user_id)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_from_sqlx).transpose()
    }

    async fn list_runs(&self, user_id: &str, filter: &RunFilter) -> StoreResult<Vec<RunRow>> {
        let listing = list_runs_sql(filter, DB::RUNS_IN_STATE);
        // Bound in the order `list_runs_sql` numbers them.
        let mut query = sqlx::query(&listing.sql).bind(user_id);
        if let Some(script_id) = &filter.script_id {
            query = query.bind(script_id);
        }
        if let Some(status) = listing.bound_status {
            query = query.bind(status);
        }
        if let Some(before) = filter.before {
            query = query.bind(before);
        }
        if let Some(since) = filter.since {
            query = query.bind(since);
        }
        if let Some(after) = &filter.after {
            query = query.bind(after.at).bind(&after.id);
        }
        let rows = query.bind(filter.limit).fetch_all(&self.pool).await?;
        rows.iter().map(run_from_sqlx).collect()
    }

    async fn run_logs(&self, user_id: &str, run_id: &str) -> StoreResult<Option<RunLogs>> {
        let row = sqlx::query("SELECT stdout, stderr FROM runs WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(RunLogs {
            stdout: row
                .try_get::<Option<Vec<u8>>, _>("stdout")?
                .unwrap_or_default(),
            stderr: row
                .try_get::<Option<Vec<u8>>, _>("stderr")?
                .unwrap_or_default(),
        }))
    }

    async fn delete_old_runs(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM runs WHERE status NOT IN ('queued', 'running') \
             AND COALESCE(finished_at, queued_at) < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM schedule_ticks WHERE tick_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn run_stats(&self, now: i64) -> StoreResult<RunStats> {
        let by_status =
            sqlx::query("SELECT status, COUNT(*) AS n FROM runs GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get::<String, _>("status")?,
                        row.try_get::<i64, _>("n")?,
                    ))
                })
                .collect::<StoreResult<Vec<_>>>()?;
        let ready: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM runs WHERE status = 'queued' \
             AND (not_before IS NULL OR not_before <= $1)",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        let running_by_worker = sqlx::query(
            "SELECT worker_id, COUNT(*) AS n FROM runs WHERE status = 'running' \
             AND worker_id IS NOT NULL GROUP BY worker_id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String, _>("worker_id")?,
                row.try_get::<i64, _>("n")?,
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(RunStats {
            by_status,
            ready,
            running_by_worker,
        })
    }

    async fn next_due(&self, now: i64) -> StoreResult<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(not_before) AS due FROM runs \
             WHERE status = 'queued' AND not_before IS NOT NULL AND not_before > $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("due")?)
    }

    async fn queue_depth(&self, user_id: &str) -> StoreResult<QueueDepth> {
        let row = sqlx::query(DB::QUEUE_DEPTH_SQL)
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(QueueDepth {
            runs: row.try_get("n")?,
            payload_bytes: row.try_get("bytes")?,
        })
    }

    async fn replay_runs(
        &self,
        user_id: &str,
        filter: &ReplayFilter,
        plan: ReplayPlan,
    ) -> StoreResult<ReplayOutcome> {
        super::replay::replay_runs(self, user_id, filter, plan).await
    }
}

/// The statement queuing a new run, returning it: `$1` id, `$2` user,
/// `$3` script, `$4` version, `$5` handler, `$6` trigger kind, `$7`
/// trigger spec, `$8` payload, `$9` now, `$10` not before.
fn insert_run_sql() -> String {
    format!(
        "INSERT INTO runs (id, user_id, script_id, script_version, handler, trigger_kind, trigger_spec, payload, \
         status, attempt, queued_at, not_before, wait_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', 1, $9, \
         $10, CASE WHEN $10 > $9 THEN 'run_at' END) \
         RETURNING {RUN_COLUMNS}"
    )
}

/// `run`, with a new id and the time, bound to `insert_run_sql()`.
fn bind_new_run<'q, DB>(
    query: sqlx::query::Query<'q, DB, DB::Arguments<'q>>,
    run: &'q NewRun,
) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
where
    DB: Engine,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
    for<'s> &'s str: Encode<'s, DB> + Type<DB>,
{
    query
        .bind(new_id("run"))
        .bind(&run.user_id)
        .bind(&run.script_id)
        .bind(run.script_version)
        .bind(&run.handler)
        .bind(run.trigger_kind.as_str())
        .bind(&run.trigger_spec)
        .bind(run.payload.to_string())
        .bind(now_millis())
        .bind(run.not_before)
}

/// The (run id, request hash, time) idempotency key `$2` of user `$1` was
/// last used with.
const IDEMPOTENT_LOOKUP_SQL: &str = "SELECT run_id, request_hash, created_at FROM idempotency_keys \
     WHERE user_id = $1 AND idem_key = $2";

/// The repeat a key's recorded use (an `IDEMPOTENT_LOOKUP_SQL` row) makes
/// of a request, if that use is at or after `since`.
fn repeat_of<R>(found: &R, key: &IdempotencyKey, since: i64) -> StoreResult<Option<Enqueued>>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: Column<R::Database>,
    i64: Column<R::Database>,
{
    if found.try_get::<i64, _>("created_at")? < since {
        return Ok(None);
    }
    Ok(Some(Enqueued::Repeat {
        run_id: found.try_get("run_id")?,
        same_request: found.try_get::<String, _>("request_hash")? == key.request_hash,
    }))
}

/// A listing of runs: its statement, and the status it binds, if any.
pub(super) struct RunListing {
    pub(super) sql: String,
    bound_status: Option<&'static str>,
}

/// The statement listing a user's runs, newest first, with only the
/// filters given: a `($n IS NULL OR …)` term hides the column from the
/// planner, and PostgreSQL's generic plan for it read every run of the user
/// and sorted them (docs/store-decisions.md). A status the engine keeps an
/// index of its runs for (`in_state`: SQLite's partial indexes) is written
/// into the statement, from that list, and the index named: a bound status
/// cannot pick a partial index. Placeholders are numbered in the order
/// `list_runs` binds: user, script, status, before, since, after, limit.
pub(super) fn list_runs_sql(filter: &RunFilter, in_state: &[(&str, &str)]) -> RunListing {
    let indexed = filter
        .status
        .and_then(|status| in_state.iter().find(|(known, _)| *known == status.as_str()));
    let from = indexed.map_or("runs", |(_, from)| *from);
    let mut sql = format!("SELECT {RUN_COLUMNS} FROM {from} WHERE user_id = $1");
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    if filter.script_id.is_some() {
        sql += &format!(" AND script_id = ${}", next());
    }
    let mut bound_status = None;
    match (indexed, filter.status) {
        (Some((status, _)), _) => sql += &format!(" AND status = '{status}'"),
        (None, Some(status)) => {
            sql += &format!(" AND status = ${}", next());
            bound_status = Some(status.as_str());
        }
        (None, None) => {}
    }
    if filter.before.is_some() {
        sql += &format!(" AND queued_at < ${}", next());
    }
    if filter.since.is_some() {
        sql += &format!(" AND queued_at >= ${}", next());
    }
    if filter.after.is_some() {
        let (at, id) = (next(), next());
        sql += &format!(" AND (queued_at, id) < (${at}, ${id})");
    }
    sql += &format!(" ORDER BY queued_at DESC, id DESC LIMIT ${}", next());
    RunListing { sql, bound_status }
}
