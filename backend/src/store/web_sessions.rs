//! Dashboard sessions: a browser signed in with an API token.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::{StoreResult, User};

/// A signed-in browser, found by its cookie's hash.
#[derive(Debug, Clone)]
pub struct WebSession {
    /// Whose session it is.
    pub user: User,
    /// The token every form of the session carries.
    pub csrf_token: String,
    /// When it stops working (Unix ms).
    pub expires_at: i64,
}

/// Dashboard sessions.
#[async_trait]
pub trait WebSessionStore: Send + Sync {
    /// Starts a session signed in with token `token_id`; also forgets
    /// every expired one.
    async fn insert_web_session(
        &self,
        id_hash: &str,
        user_id: &str,
        token_id: &str,
        csrf_token: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// The session with this hash, if it has not expired at `now`.
    async fn web_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<WebSession>>;
    /// Ends a session; whether there was one.
    async fn delete_web_session(&self, id_hash: &str) -> StoreResult<bool>;
}

#[async_trait]
impl<DB> WebSessionStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    i64: Column<DB>,
{
    async fn insert_web_session(
        &self,
        id_hash: &str,
        user_id: &str,
        token_id: &str,
        csrf_token: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        // Sign-ins are rare: sweeping here keeps the table to live sessions
        // without a background task.
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, expires_at, token_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(csrf_token)
        .bind(now)
        .bind(expires_at)
        .bind(token_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn web_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<WebSession>> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.created_at, s.csrf_token, s.expires_at \
             FROM web_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(WebSession {
                user: User {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                },
                csrf_token: row.try_get("csrf_token")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    async fn delete_web_session(&self, id_hash: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }
}
