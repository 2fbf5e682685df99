use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::StoreResult;

/// The embedded default: one SQLite file in the data directory.
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and applies the migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

// Write transactions take the write lock up front (IMMEDIATE): a deferred
// transaction that reads and then writes can fail with SQLITE_BUSY at once,
// without waiting, when another writer got in between. A claim is a single
// UPDATE, which takes the same lock before it reads, so no per-script lock
// is needed.
super::sql::sql_store!(
    SqliteStore,
    begin = "BEGIN IMMEDIATE",
    claim_candidates = "FROM runs q WHERE status = 'queued' \
                 AND (not_before IS NULL OR not_before <= $1) \
                 AND (SELECT COUNT(*) FROM runs r WHERE r.script_id = q.script_id AND r.status = 'running') < $2 \
                 ORDER BY queued_at, id LIMIT 1",
    script_lock_sql = None::<&str>,
    claim_in_one_statement = true
);
