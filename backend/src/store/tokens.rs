//! API tokens: named, scoped, optionally expiring, stored as SHA-256
//! hashes. Revoking deletes the token (and the dashboard sessions signed
//! in with it) and, on PostgreSQL, tells every node at the commit.

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use serde::Serialize;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore, conflict};
use super::{Scope, StoreError, StoreResult, User, new_id};

/// A token as listed: never its value or hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    /// `tok_…`, to revoke it by.
    pub id: String,
    /// Whose it is.
    pub user_id: String,
    /// Unique among the user's tokens.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// When it stops working (Unix ms), if ever.
    pub expires_at: Option<i64>,
    /// Last request made with it (Unix ms, to the minute), if any.
    pub last_used_at: Option<i64>,
}

/// What a request's token grants: its user and the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub user: User,
    pub token: TokenRow,
}

impl TokenGrant {
    /// Whether the token may do what `scope` covers.
    pub fn allows(&self, scope: Scope) -> bool {
        self.token.scopes.contains(&scope)
    }

    /// Whether it holds every scope (what managing tokens and the
    /// dashboard ask).
    pub fn is_full(&self) -> bool {
        Scope::ALL.iter().all(|scope| self.allows(*scope))
    }
}

/// A token to store.
pub struct NewToken<'a> {
    pub user_id: &'a str,
    pub name: &'a str,
    pub scopes: &'a [Scope],
    pub expires_at: Option<i64>,
    pub token_hash: &'a str,
    pub now: i64,
}

/// A token's last use is written when the one stored is older than this.
const LAST_USE_EVERY_MS: i64 = 60_000;

const TOKEN_COLUMNS: &str =
    "t.id, t.user_id, t.name, t.scopes, t.created_at, t.expires_at, t.last_used_at";

/// API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The grant of the token with this hash, unless it has expired at
    /// `now`; notes its use.
    async fn token_grant(&self, token_hash: &str, now: i64) -> StoreResult<Option<TokenGrant>>;
    /// Stores a token; a name the user has already is a conflict.
    async fn create_token(&self, token: &NewToken<'_>) -> StoreResult<TokenRow>;
    /// The user's tokens, by name.
    async fn list_tokens(&self, user_id: &str) -> StoreResult<Vec<TokenRow>>;
    /// Revokes one of the user's tokens; whether it was there.
    async fn revoke_token(&self, user_id: &str, token_id: &str) -> StoreResult<bool>;
    /// Revokes every token of the user, and ends their dashboard
    /// sessions; how many tokens went.
    async fn revoke_user_tokens(&self, user_id: &str) -> StoreResult<u64>;
    /// Revocations announced by other nodes (see `Engine::token_revocations`).
    async fn token_revocations(&self) -> StoreResult<Option<BoxStream<'static, ()>>>;
}

#[async_trait]
impl<DB> TokenStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
{
    async fn token_grant(&self, token_hash: &str, now: i64) -> StoreResult<Option<TokenGrant>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS}, u.name AS user_name, u.created_at AS user_created_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token = token_from_row(&row)?;
        if token
            .last_used_at
            .is_none_or(|at| at + LAST_USE_EVERY_MS <= now)
        {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(token_hash)
                .execute(&self.pool)
                .await?;
        }
        let user = User {
            id: token.user_id.clone(),
            name: row.try_get("user_name")?,
            created_at: row.try_get("user_created_at")?,
        };
        Ok(Some(TokenGrant { user, token }))
    }

    async fn create_token(&self, token: &NewToken<'_>) -> StoreResult<TokenRow> {
        let row = TokenRow {
            id: new_id("tok"),
            user_id: token.user_id.to_string(),
            name: token.name.to_string(),
            scopes: token.scopes.to_vec(),
            created_at: token.now,
            expires_at: token.expires_at,
            last_used_at: None,
        };
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, user_id, created_at, id, name, scopes, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.token_hash)
        .bind(&row.user_id)
        .bind(row.created_at)
        .bind(&row.id)
        .bind(&row.name)
        .bind(Scope::join(&row.scopes))
        .bind(row.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, &format!("a token named `{}`", token.name)))?;
        Ok(row)
    }

    async fn list_tokens(&self, user_id: &str) -> StoreResult<Vec<TokenRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.user_id = $1 ORDER BY t.name"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, user_id: &str, token_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        let done = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(token_id)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&done) == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM web_sessions WHERE user_id = $1 AND token_id = $2")
            .bind(user_id)
            .bind(token_id)
            .execute(&mut *tx)
            .await?;
        announce::<DB>(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn revoke_user_tokens(&self, user_id: &str) -> StoreResult<u64> {
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        let done = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        announce::<DB>(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&done))
    }

    async fn token_revocations(&self) -> StoreResult<Option<BoxStream<'static, ()>>> {
        DB::token_revocations(&self.pool).await
    }
}

/// Tells the other nodes, at the commit, that `user_id`'s tokens changed.
pub(super) async fn announce<DB>(
    tx: &mut sqlx::Transaction<'_, DB>,
    user_id: &str,
) -> StoreResult<()>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    if let Some(sql) = DB::TOKENS_REVOKED_SQL {
        sqlx::query(sql).bind(user_id).execute(&mut **tx).await?;
    }
    Ok(())
}

fn token_from_row<R>(row: &R) -> StoreResult<TokenRow>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: Column<R::Database>,
    i64: Column<R::Database>,
    Option<i64>: Column<R::Database>,
{
    let scopes: String = row.try_get("scopes")?;
    Ok(TokenRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        scopes: Scope::parse_list(&scopes).map_err(StoreError::Corrupt)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}
