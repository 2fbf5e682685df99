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
}

// Several nodes claim concurrently: SKIP LOCKED hands each a different
// candidate, and a transaction-scoped advisory lock per script makes the
// concurrency-cap check and the claim one step.
super::sql::sql_store!(
    PostgresStore,
    begin = "BEGIN",
    claim_candidates = "FROM runs q WHERE status = 'queued' \
                 AND (not_before IS NULL OR not_before <= $1) \
                 AND (SELECT COUNT(*) FROM runs r WHERE r.script_id = q.script_id AND r.status = 'running') < $2 \
                 ORDER BY queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
    // Under READ COMMITTED two claims could both count room under a
    // script's cap; the advisory lock in a transaction serialises them.
    script_lock_sql = Some("SELECT pg_advisory_xact_lock(hashtext($1))"),
    // A count kept by triggers would make every run write of a user take
    // that user's one counter row, serialising them across nodes; an
    // index-only count is the cheaper trade here.
    queued_runs_sql = "SELECT COUNT(*) AS n FROM runs WHERE user_id = $1 AND status = 'queued'"
);
