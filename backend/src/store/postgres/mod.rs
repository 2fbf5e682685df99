//! The scale-out store: several roost nodes share one PostgreSQL. Every
//! node writes through its own pool; PostgreSQL's row locks, not a single
//! writer, keep the writes apart.

/// The scripts whose running runs `$2` workers or more hold (a worker
/// counts once: it runs what it is handed one at a time); one text for
/// every claim statement that leaves them out.
macro_rules! capped_scripts {
    () => {
        "SELECT script_id FROM (SELECT DISTINCT script_id, worker_id FROM runs \
         WHERE status = 'running') w GROUP BY script_id HAVING COUNT(*) >= $2"
    };
}

mod batches;
mod emitted;
mod ingest;
mod queue;
mod run_state;

use std::str::FromStr as _;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::StoreResult;
use super::engine::{Engine, SqlStore};

/// The store on PostgreSQL.
pub(crate) type PostgresStore = SqlStore<sqlx::Postgres>;

impl Engine for sqlx::Postgres {
    type Queue = PgQueue;
    const BEGIN: &'static str = "BEGIN";
    // Under READ COMMITTED two deploys could both count room under the
    // user's script cap; the advisory lock in a transaction serialises them.
    const USER_LOCK_SQL: Option<&'static str> = Some(ADVISORY_LOCK_SQL);
    // Kept by triggers in 16 rows per user (migration 0015), so that
    // concurrent writes of one user do not queue for one counter row.
    const QUEUE_DEPTH_SQL: &'static str = "SELECT COALESCE(SUM(queued), 0)::BIGINT AS n, \
         COALESCE(SUM(payload_bytes), 0)::BIGINT AS bytes FROM queue_depth WHERE user_id = $1";
    // Its index on (user_id, status, queued_at, id) serves every status.
    const RUNS_IN_STATE: &'static [(&'static str, &'static str)] = &[];
    const TOKENS_REVOKED_SQL: Option<&'static str> =
        Some("SELECT pg_notify('roost_tokens_revoked', $1)");
    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }
    fn token_revocations(
        pool: &sqlx::PgPool,
    ) -> futures_util::future::BoxFuture<
        '_,
        StoreResult<Option<futures_util::stream::BoxStream<'static, ()>>>,
    > {
        Box::pin(async move {
            let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
            listener.listen("roost_tokens_revoked").await?;
            // A lost connection may have lost notices: it counts as one.
            let notices = futures_util::stream::unfold(listener, |mut listener| async move {
                if let Err(err) = listener.recv().await {
                    tracing::warn!(error = %err, "listening for token revocations failed; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Some(((), listener))
            });
            Ok(Some(futures_util::StreamExt::boxed(notices)))
        })
    }
}

/// What PostgreSQL's run queue keeps beside the pool.
pub(crate) struct PgQueue {
    /// Writes events several to a transaction.
    ingest: ingest::Ingest,
    /// What this store signs its notices of queued runs with, to know its
    /// own when they come back.
    node_mark: String,
    /// Whether a worker may be handed several runs at once (see
    /// `RunQueue::hold_run_starts`): only where a dead node's runs are
    /// queued again, since a run waiting in a worker's hands reads as
    /// running.
    batch_claims: std::sync::atomic::AtomicBool,
}

/// Holds, until the transaction ends, a lock on the hash of `$1` (a user
/// or script id): transactions taking the same one take turns.
const ADVISORY_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(hashtext($1))";

impl SqlStore<sqlx::Postgres> {
    /// Connects and applies the migrations.
    pub(crate) async fn connect(url: &str) -> StoreResult<Self> {
        // No JIT: a claim's plan carries the cost PostgreSQL gives a sort
        // it was told not to use (`CLAIM_BEGIN`), far above the JIT's
        // thresholds, and compiling it took far longer than running it
        // (docs/postgres-queue.md, BENCHMARKS.md).
        let options = PgConnectOptions::from_str(url)?.options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        let node_mark = super::new_id("node");
        Ok(Self {
            queue: PgQueue {
                ingest: ingest::Ingest::start(pool.clone(), node_mark.clone()),
                node_mark,
                batch_claims: Default::default(),
            },
            pool,
        })
    }
}

/// How a claim's transaction begins, in one round trip:
/// - its commit does not wait for the WAL to reach the disk. The script's
///   advisory lock (taken with the candidates, batches.rs) is held until
///   the commit, and every claim of a script would queue behind a durable
///   commit's flush. What that risks: if PostgreSQL itself crashes
///   within a fraction of a second of a claim, the run comes back `queued`
///   and may start again elsewhere, while the first worker stops at its
///   next heartbeat, which no longer finds the run its own. That is the
///   at-least-once a crashed node already gives. A finish commits durably,
///   and with it every earlier claim (the WAL is written in order).
/// - the candidates are read in the claim index's order, whatever the
///   statistics say. Right after a burst of events the planner still
///   believes the queue empty, fetches every queued run, counts each one's
///   script's running runs, and sorts. In index order the scan stops at the
///   first claimable run. (Both measured: docs/store-decisions.md.)
const CLAIM_BEGIN: &str = "BEGIN; SET LOCAL synchronous_commit = off; \
     SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RunQueue as _;

    /// Right after a burst of events the table's statistics still say the
    /// queue is empty. A claim must still read the queued runs in the
    /// claim index's order and stop at the first it can take, not fetch
    /// and sort them all. Skipped unless ROOST_TEST_POSTGRES_URL is set.
    #[tokio::test]
    async fn a_claim_reads_the_queue_in_order_even_before_statistics_catch_up() {
        let Some(base) = std::env::var("ROOST_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipped: set ROOST_TEST_POSTGRES_URL to run it on PostgreSQL");
            return;
        };
        use sqlx::Connection as _;
        let name = format!(
            "roost_claim_plan_{}",
            hex::encode(rand::random::<[u8; 6]>())
        );
        let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
        let store = PostgresStore::connect(&url).await.unwrap();
        sqlx::query("INSERT INTO users (id, name, created_at) VALUES ('u', 'ada', 0)")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO runs (id, user_id, script_id, script_version, trigger_kind, trigger_spec, \
             payload, status, attempt, queued_at) \
             SELECT 'run_' || n, 'u', 'script_' || (n % 3), 1, 'event', 'order.created', '{}', \
             'queued', 1, n FROM generate_series(1, 3000) n",
        )
        .execute(&store.pool)
        .await
        .unwrap();

        let mut tx = store.pool.begin_with(CLAIM_BEGIN).await.unwrap();
        let plan: Vec<String> =
            sqlx::query_scalar(&format!("EXPLAIN {}", super::batches::CLAIM_BATCH_SQL))
                .bind(i64::MAX)
                .bind(4_i64)
                .bind("[]")
                .bind(4_i64)
                .bind(4.0_f64)
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        tx.rollback().await.unwrap();
        // The candidates' part of the plan: from `CTE c` to the next node
        // at its depth (the sorts after it order a handful of rows).
        let depth = |line: &str| line.len() - line.trim_start().len();
        let start = plan
            .iter()
            .position(|line| line.trim() == "CTE c")
            .unwrap_or_else(|| panic!("{}", plan.join("\n")));
        let candidates: Vec<&str> = plan[start + 1..]
            .iter()
            .take_while(|line| depth(line) > depth(&plan[start]))
            .map(String::as_str)
            .collect();
        let (candidates, plan) = (candidates.join("\n"), plan.join("\n"));
        assert!(
            candidates.contains("Index Scan using runs_claim_order"),
            "{plan}"
        );
        assert!(
            !candidates.contains("Sort") && !plan.contains("Bitmap"),
            "{plan}"
        );

        // The claim itself takes the oldest.
        let run = store.claim_run("w", 4, &[]).await.unwrap().unwrap();
        assert_eq!(run.id, "run_1");
        drop(store);
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
