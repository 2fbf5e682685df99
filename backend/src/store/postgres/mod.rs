//! The scale-out store: several roost nodes share one PostgreSQL. Every
//! node writes through its own pool; PostgreSQL's row locks, not a single
//! writer, keep the writes apart.

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
        // it was told not to use (`claim_runs`, migration 0036), far above
        // the JIT's thresholds, and compiling it took far longer than
        // running it (docs/postgres-queue.md, BENCHMARKS.md).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RunQueue as _, RunStore as _};
    use sqlx::Connection as _;

    /// A store on a database of its own holding user `u` and `queued` runs
    /// `run_1`… queued in that order (three scripts in turn), its URL, and
    /// an admin connection to drop it with (`drop_database`). None unless
    /// ROOST_TEST_POSTGRES_URL is set.
    async fn store_with_queue(queued: i64) -> Option<(PostgresStore, String, sqlx::PgConnection)> {
        let Some(base) = std::env::var("ROOST_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipped: set ROOST_TEST_POSTGRES_URL to run it on PostgreSQL");
            return None;
        };
        let name = format!("roost_claims_{}", hex::encode(rand::random::<[u8; 6]>()));
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
             'queued', 1, n FROM generate_series(1, $1) n",
        )
        .bind(queued)
        .execute(&store.pool)
        .await
        .unwrap();
        Some((store, url, admin))
    }

    async fn drop_database(store: PostgresStore, url: &str, mut admin: sqlx::PgConnection) {
        drop(store);
        let name = url.rsplit_once('/').unwrap().1;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
    }

    /// Right after a burst of events the table's statistics still say the
    /// queue is empty. A claim must still read the queued runs in the
    /// claim index's order and stop at the first it can take, not fetch
    /// and sort them all: here 20,000 queued runs fill about 350 pages,
    /// which a claim that sorts reads (about 420 buffers), and one in the
    /// index's order does not (about 60).
    #[tokio::test]
    async fn a_claim_reads_the_queue_in_order_even_before_statistics_catch_up() {
        let Some((store, url, admin)) = store_with_queue(20_000).await else {
            return;
        };
        // The claim takes the oldest; it also plans the function's
        // statements on this connection, so the second claim's buffers
        // are its reads of the queue, not of the catalog.
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("jit", "off")]);
        let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
        let first: String = sqlx::query_scalar("SELECT id FROM claim_runs('w0', 1, 4, '[]', 1, 1)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(first, "run_1");
        let plan: Vec<String> = sqlx::query_scalar(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT id FROM claim_runs('w1', 1, 4, '[]', 1, 1)",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let plan = plan.join("\n");
        let buffers: u64 = plan
            .lines()
            .find_map(|line| line.trim().strip_prefix("Buffers: shared "))
            .unwrap_or_else(|| panic!("{plan}"))
            .split(' ')
            .filter_map(|kind| kind.split_once('=')?.1.parse::<u64>().ok())
            .sum();
        assert!(buffers < 200, "a claim read {buffers} buffers:\n{plan}");
        let run = store.claim_run("w", 4, &[]).await.unwrap().unwrap();
        assert_eq!(run.id, "run_3");
        drop(conn);
        drop_database(store, &url, admin).await;
    }

    /// A node still running the code from before migration 0036 claims by a
    /// plain update, which a row trigger takes off the queue depth; a claim
    /// by `claim_runs` counts itself, once.
    #[tokio::test]
    async fn claims_old_and_new_each_leave_the_queue_depth_right() {
        let Some((store, url, admin)) = store_with_queue(10).await else {
            return;
        };
        let depth = || async { store.queue_depth("u").await.unwrap().runs };
        assert_eq!(depth().await, 10);
        store.claim_run("new", 4, &[]).await.unwrap().unwrap();
        assert_eq!(depth().await, 9);
        sqlx::query(
            "UPDATE runs SET status = 'running', worker_id = 'old', started_at = 1, \
             heartbeat_at = 1 WHERE id IN ('run_9', 'run_10') AND status = 'queued'",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        assert_eq!(depth().await, 7);
        drop_database(store, &url, admin).await;
    }
}
