use sqlx::postgres::{PgPool, PgPoolOptions};

use super::StoreResult;

/// The scale-out store: several roost nodes share one PostgreSQL.
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects and applies the migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new().max_connections(16).connect(url).await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

// Several nodes claim concurrently: SKIP LOCKED hands each a different run.
super::sql::sql_store!(
    PostgresStore,
    begin = "BEGIN",
    claim_sql = "UPDATE runs SET status = 'running', worker_id = $1, started_at = $2, heartbeat_at = $2 \
                 WHERE id = (SELECT id FROM runs q WHERE status = 'queued' AND (not_before IS NULL OR not_before <= $2) \
                 AND (SELECT COUNT(*) FROM runs r WHERE r.script_id = q.script_id AND r.status = 'running') < $3 \
                 ORDER BY queued_at, id LIMIT 1 \
                 FOR UPDATE SKIP LOCKED) RETURNING {columns}"
);
