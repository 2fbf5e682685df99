//! A worker's trip to PostgreSQL in few round trips: the plain finishes of
//! several runs in one statement, the runs it gives back in another, and
//! several runs claimed in one transaction (docs/postgres-queue.md).

use std::collections::HashMap;

use sqlx::Row as _;

use super::{CLAIM_BEGIN, PostgresStore};
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

/// The oldest claimable runs, at most `$4`, nor more than a `$5`th of the
/// queue (rounded up): one worker does not take the few runs there are
/// while the others wait. Passed over: runs before their backoff (`$1`),
/// of a script at its cap (`$2`), of a key at its limit, of the users in
/// `$3` (a JSON array), and those another claim holds locked. The scripts
/// at their cap are found once, not per queued run. Their scripts'
/// advisory locks are taken in the locks' order, so claims never wait on
/// each other in a circle.
pub(super) const CLAIM_BATCH_SQL: &str = concat!(
    "WITH capped AS MATERIALIZED (",
    capped_scripts!(),
    "), \
     c AS MATERIALIZED (SELECT id, script_id, concurrency_key, \
     concurrency_limit, queued_at FROM runs q WHERE status = 'queued' \
     AND (not_before IS NULL OR not_before <= $1) \
     AND q.script_id NOT IN (SELECT script_id FROM capped) \
     AND (q.concurrency_key IS NULL OR (SELECT COUNT(DISTINCT k.worker_id) FROM runs k \
       WHERE k.concurrency_key = q.concurrency_key AND k.status = 'running') < q.concurrency_limit) \
     AND q.user_id NOT IN (SELECT jsonb_array_elements_text($3::jsonb)) \
     ORDER BY queued_at, id \
     LIMIT LEAST($4, GREATEST(1, CEIL((SELECT COALESCE(SUM(queued), 0) FROM queue_depth)::float8 / $5)))::int \
     FOR UPDATE SKIP LOCKED), \
     locks AS MATERIALIZED (SELECT pg_advisory_xact_lock(h) FROM \
       (SELECT DISTINCT hashtext(script_id)::int8 AS h FROM c ORDER BY h OFFSET 0) s) \
     SELECT id, script_id, concurrency_key, concurrency_limit, (SELECT COUNT(*) FROM locks) AS locked \
     FROM c ORDER BY queued_at, id"
);

/// The concurrency keys in `$1`, locked in order, after the scripts' (one
/// order for every claim).
const LOCK_KEYS_SQL: &str = "SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock(1, h) FROM \
     (SELECT DISTINCT hashtext(k) AS h FROM UNNEST($1::text[]) k ORDER BY h OFFSET 0) s) l";

/// How many runs are running of each script in `$1` and each key in `$2`,
/// and, for each run in `$3`, how many due runs of its key (at `$4`) wait
/// ahead of it; read after their locks (a new statement: a new snapshot).
const RUNNING_SQL: &str = "SELECT 's' AS kind, script_id AS name, COUNT(DISTINCT worker_id) AS n FROM runs \
     WHERE script_id = ANY($1) AND status = 'running' GROUP BY script_id \
     UNION ALL SELECT 'k', concurrency_key, COUNT(DISTINCT worker_id) FROM runs \
     WHERE concurrency_key = ANY($2) AND status = 'running' GROUP BY concurrency_key \
     UNION ALL SELECT 'o', c.id, (SELECT COUNT(*) FROM runs o WHERE o.concurrency_key = c.concurrency_key \
       AND o.status = 'queued' AND (o.not_before IS NULL OR o.not_before <= $4) \
       AND (o.queued_at, o.id) < (c.queued_at, c.id)) FROM runs c WHERE c.id = ANY($3)";

/// Writes runs `$3` running under worker `$1` from `$2`, each if it is
/// still queued; the claims' one update, which the variants below extend.
const CLAIM_SET: &str = "UPDATE runs SET status = 'running', worker_id = $1, started_at = $2, \
     heartbeat_at = $2 WHERE id = ANY($3) AND status = 'queued'";

/// `CLAIM_SET`, answering with the runs written.
pub(super) static CLAIM_UPDATE_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{CLAIM_SET} RETURNING {RUN_COLUMNS}"));

/// `CLAIM_UPDATE_SQL` for runs with no concurrency key, leaving out the
/// runs of each script of `$4` whose running runs other workers hold
/// `$5` of (read after the scripts' locks: a new statement, a new
/// snapshot). The worker counts once against a script's cap, as it runs
/// what it is handed one at a time.
static CLAIM_TAKE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{CLAIM_SET} AND script_id NOT IN (SELECT script_id FROM \
         (SELECT DISTINCT script_id, worker_id FROM runs WHERE status = 'running' \
         AND script_id = ANY($4) AND worker_id <> $1) w GROUP BY script_id HAVING COUNT(*) >= $5) \
         RETURNING {RUN_COLUMNS}"
    )
});

/// A run that may be claimed, in queue order.
struct Candidate {
    id: String,
    script_id: String,
    key: Option<(String, i64)>,
}

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
    /// `worker_id` in one transaction, in queue order, within every cap
    /// (`RunQueue::claim_run`).
    pub(super) async fn claim_batch(
        &self,
        worker_id: &str,
        claim: &NextClaim,
    ) -> StoreResult<Vec<RunRow>> {
        let now = now_millis();
        let skip_users = serde_json::to_string(&claim.skip_users).expect("ids serialise");
        if skip_users != "[]" && !self.others_queued(&skip_users).await? {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin_with(CLAIM_BEGIN).await?;
        let rows = sqlx::query(CLAIM_BATCH_SQL)
            .bind(now)
            .bind(claim.per_script_limit)
            .bind(&skip_users)
            .bind(i64::try_from(claim.runs).unwrap_or(1))
            .bind(claim.workers.max(1) as f64)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut candidates = Vec::with_capacity(rows.len());
        for row in rows {
            let key: Option<String> = row.try_get("concurrency_key")?;
            let limit: Option<i64> = row.try_get("concurrency_limit")?;
            candidates.push(Candidate {
                id: row.try_get("id")?,
                script_id: row.try_get("script_id")?,
                key: key.map(|key| (key, limit.unwrap_or(1))),
            });
        }
        let (taken, claimed) = if candidates.iter().all(|c| c.key.is_none()) {
            // No concurrency keys: the caps are counted and the runs taken
            // in one statement, so the scripts' locks are held one round
            // trip less (every claim of a script waits for them).
            let taken: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
            let mut scripts: Vec<&str> = candidates.iter().map(|c| c.script_id.as_str()).collect();
            scripts.sort_unstable();
            scripts.dedup();
            let claimed = sqlx::query(CLAIM_TAKE_SQL.as_str())
                .bind(worker_id)
                .bind(now)
                .bind(&taken)
                .bind(&scripts)
                .bind(claim.per_script_limit)
                .fetch_all(&mut *tx)
                .await?;
            (taken, claimed)
        } else {
            let taken = within_limits(&mut tx, &candidates, claim, now).await?;
            if taken.is_empty() {
                return Ok(Vec::new());
            }
            let claimed = sqlx::query(CLAIM_UPDATE_SQL.as_str())
                .bind(worker_id)
                .bind(now)
                .bind(&taken)
                .fetch_all(&mut *tx)
                .await?;
            (taken, claimed)
        };
        let mut runs = claimed
            .iter()
            .map(run_from_sqlx)
            .collect::<StoreResult<Vec<_>>>()?;
        tx.commit().await?;
        runs.sort_by_key(|run| taken.iter().position(|id| *id == run.id));
        Ok(runs)
    }
}

/// Of `candidates` (locked, with their scripts' advisory locks held), those
/// within their scripts' caps and their keys' limits, in queue order; the
/// keys' locks are taken here.
async fn within_limits<'c>(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    candidates: &'c [Candidate],
    claim: &NextClaim,
    now: i64,
) -> StoreResult<Vec<&'c str>> {
    let keys: Vec<&str> = candidates
        .iter()
        .filter_map(|c| c.key.as_ref().map(|(key, _)| key.as_str()))
        .collect();
    if !keys.is_empty() {
        sqlx::query(LOCK_KEYS_SQL)
            .bind(&keys)
            .execute(&mut **tx)
            .await?;
    }
    let keyed: Vec<&str> = candidates
        .iter()
        .filter(|c| c.key.is_some())
        .map(|c| c.id.as_str())
        .collect();
    let scripts: Vec<&str> = candidates.iter().map(|c| c.script_id.as_str()).collect();
    let mut running: HashMap<(String, String), i64> = HashMap::new();
    for row in sqlx::query(RUNNING_SQL)
        .bind(&scripts)
        .bind(&keys)
        .bind(&keyed)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?
    {
        running.insert(
            (row.try_get("kind")?, row.try_get("name")?),
            row.try_get("n")?,
        );
    }
    // In queue order, each within its script's cap and its key's
    // limit. The worker runs what it is handed one at a time, so it
    // counts once against each (as a worker holding runs counts once
    // there), and it holds a key's runs in the key's order (a run
    // ahead, locked by another claim, was passed over above).
    let mut taken = Vec::new();
    let mut mine: HashMap<(String, String), i64> = HashMap::new();
    for candidate in candidates {
        let script = ("s".to_string(), candidate.script_id.clone());
        let holds_script = mine.contains_key(&script);
        if !holds_script && running.get(&script).copied().unwrap_or(0) >= claim.per_script_limit {
            continue;
        }
        if let Some((key, limit)) = &candidate.key {
            let key = ("k".to_string(), key.clone());
            let ahead = running
                .get(&("o".to_string(), candidate.id.clone()))
                .copied()
                .unwrap_or(0);
            let held = mine.get(&key).copied().unwrap_or(0);
            if ahead > held || (held == 0 && running.get(&key).copied().unwrap_or(0) >= *limit) {
                continue;
            }
            *mine.entry(key).or_default() += 1;
        }
        *mine.entry(script).or_default() += 1;
        taken.push(candidate.id.as_str());
    }
    Ok(taken)
}
