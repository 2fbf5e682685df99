//! Users and their API tokens.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore, conflict};
use super::{StoreResult, User, new_id, now_millis};

/// Users and their API tokens.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user with one API token (given as its hash).
    async fn create_user(&self, name: &str, token_hash: &str) -> StoreResult<User>;
    /// A user by id.
    async fn get_user(&self, user_id: &str) -> StoreResult<Option<User>>;
    /// The user owning the token with this hash, expired or not (see
    /// `TokenStore::token_grant` for what a request may do).
    async fn user_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<User>>;
    /// Every user, by name.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Removes a user and everything of theirs (scripts, runs, credentials,
    /// tokens, sessions); whether there was one.
    async fn delete_user(&self, user_id: &str) -> StoreResult<bool>;
}

#[async_trait]
impl<DB> UserStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    i64: Column<DB>,
{
    async fn create_user(&self, name: &str, token_hash: &str) -> StoreResult<User> {
        let user = User {
            id: new_id("usr"),
            name: name.to_string(),
            created_at: now_millis(),
        };
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        sqlx::query("INSERT INTO users (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&user.id)
            .bind(&user.name)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, &format!("a user named `{name}`")))?;
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, user_id, created_at, id) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(&user.id)
        .bind(user.created_at)
        .bind(new_id("tok"))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT id, name, created_at FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.created_at FROM users u \
             JOIN api_tokens t ON t.user_id = u.id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn delete_user(&self, user_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        // Every table of theirs refers to the user with ON DELETE CASCADE.
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        super::tokens::announce::<DB>(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&done) > 0)
    }
}

fn user_from_row<R>(row: &R) -> StoreResult<User>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: Column<R::Database>,
    i64: Column<R::Database>,
{
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}
