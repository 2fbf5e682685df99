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

super::sql::sql_store!(PostgresStore);
