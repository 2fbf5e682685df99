use sqlx::postgres::{PgPool, PgPoolOptions};

use super::StoreResult;

/// The scale-out store: several roost nodes share one PostgreSQL.
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects and applies the migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(url)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    // Every node writes concurrently through its own pool: PostgreSQL's row
    // locks, not a single writer, keep the writes apart.
    fn group_commit(&self) -> Option<&super::group_commit::GroupCommit> {
        None
    }

    /// Whether a user other than those in `$1` (a JSON array) may have runs
    /// queued (see sqlite.rs): a shard with some. A user's shards can go
    /// below zero one by one, never all, so this errs only towards yes.
    fn others_queued_sql(&self) -> &'static str {
        "SELECT EXISTS (SELECT 1 FROM queue_depth WHERE queued > 0 \
         AND user_id NOT IN (SELECT jsonb_array_elements_text($1::jsonb)))"
    }

    /// A manual run's end, announced to every node (delivered once the
    /// finish has committed).
    fn run_end_notice(&self) -> Option<&'static str> {
        Some("SELECT pg_notify('roost_run_ends', $1)")
    }

    /// The announced ends, on a connection of their own. The listener
    /// reconnects by itself after a lost connection; notices sent while it
    /// was away are lost, which the waiting requests' periodic look covers.
    async fn listen_for_run_ends(
        &self,
    ) -> StoreResult<Option<futures_util::stream::BoxStream<'static, String>>> {
        use futures_util::StreamExt as _;
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen("roost_run_ends").await?;
        let ends = futures_util::stream::unfold(listener, |mut listener| async move {
            loop {
                match listener.recv().await {
                    Ok(notice) => return Some((notice.payload().to_string(), listener)),
                    Err(err) => {
                        tracing::warn!(error = %err, "listening for run ends failed; trying again");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Some(ends.boxed()))
    }
}

/// How a claim's transaction begins, in one round trip:
/// - its commit does not wait for the WAL to reach the disk. The script's
///   advisory lock (below) is held until the commit, and every claim of a
///   script would queue behind a durable commit's flush. What that risks: if PostgreSQL itself crashes
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

/// Queued runs a claim may take: oldest first, none before its backoff
/// (`$1`), none of a script at its cap (`$2`), none of the users in `$3`
/// (a JSON array); locked, and skipped while another claim holds them.
const CLAIM_CANDIDATES: &str = "FROM runs q WHERE status = 'queued' \
     AND (not_before IS NULL OR not_before <= $1) \
     AND (SELECT COUNT(*) FROM runs r WHERE r.script_id = q.script_id AND r.status = 'running') < $2 \
     AND q.user_id NOT IN (SELECT jsonb_array_elements_text($3::jsonb)) \
     ORDER BY queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED";

// Several nodes claim concurrently: SKIP LOCKED hands each a different
// candidate, and a transaction-scoped advisory lock per script makes the
// concurrency-cap check and the claim one step.
super::sql::sql_store!(
    PostgresStore,
    db = sqlx::Postgres,
    begin = "BEGIN",
    claim_begin = CLAIM_BEGIN,
    claim_candidates = CLAIM_CANDIDATES,
    // Under READ COMMITTED two claims could both count room under a
    // script's cap; the advisory lock in a transaction serialises them.
    script_lock_sql = Some("SELECT pg_advisory_xact_lock(hashtext($1))"),
    // Kept by triggers in 16 rows per user (migration 0015), so that
    // concurrent writes of one user do not queue for one counter row.
    queued_runs_sql = "SELECT COALESCE(SUM(queued), 0)::BIGINT AS n, COALESCE(SUM(payload_bytes), 0)::BIGINT AS bytes \
         FROM queue_depth WHERE user_id = $1",
    // Its index on (user_id, status, queued_at, id) serves every status.
    runs_in_state = &[]
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store as _;

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
            sqlx::query_scalar(&format!("EXPLAIN SELECT id, script_id {CLAIM_CANDIDATES}"))
                .bind(i64::MAX)
                .bind(4_i64)
                .bind("[]")
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        tx.rollback().await.unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("Index Scan using runs_claim_order"), "{plan}");
        assert!(!plan.contains("Sort") && !plan.contains("Bitmap"), "{plan}");

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
