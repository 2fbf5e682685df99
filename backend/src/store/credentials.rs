//! Users' encrypted credentials, and the flows that write them: pending
//! OAuth authorizations and single-use setup links.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::now_millis;
use super::{CredentialRow, CredentialStatus, LinkUse, LinkWrite, OAuthStateRow, StoreResult};

/// Credentials and the flows that store them.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Writes several credential rows of one user atomically (insert or replace).
    async fn put_credentials(&self, rows: &[CredentialRow]) -> StoreResult<()>;
    /// A user's credential rows, optionally for one integration only.
    async fn credentials(
        &self,
        user_id: &str,
        integration: Option<&str>,
    ) -> StoreResult<Vec<CredentialRow>>;
    /// Deletes a user's credentials for an integration; returns how many rows went.
    async fn delete_credentials(&self, user_id: &str, integration: &str) -> StoreResult<u64>;
    /// Every credential row (for key rotation).
    async fn all_credentials(&self) -> StoreResult<Vec<CredentialRow>>;
    /// Replaces the encryption of existing rows atomically (key rotation).
    async fn reencrypt_credentials(&self, rows: &[CredentialRow]) -> StoreResult<()>;
    /// Marks all of a user's credentials for an integration (`reconnect_needed`…).
    async fn set_credential_status(
        &self,
        user_id: &str,
        integration: &str,
        status: CredentialStatus,
    ) -> StoreResult<()>;
    /// Records a pending OAuth authorization (and sweeps expired ones).
    async fn put_oauth_state(&self, row: &OAuthStateRow) -> StoreResult<()>;
    /// Removes and returns a pending authorization: a state works once.
    async fn take_oauth_state(&self, state: &str) -> StoreResult<Option<OAuthStateRow>>;
    /// Whether a credential was already stored through the setup link
    /// with this id.
    async fn setup_link_spent(&self, link_id: &str) -> StoreResult<bool>;
    /// Writes credential rows of one user through setup link `link`,
    /// spending it, in one transaction. Nothing is written if the link was
    /// spent already, or if the integration is connected (and working)
    /// with a value stored after the link was issued.
    async fn put_credentials_through_link(
        &self,
        rows: &[CredentialRow],
        link: &LinkUse,
    ) -> StoreResult<LinkWrite>;
}

const CREDENTIAL_COLUMNS: &str = "user_id, integration_id, cred_key, key_id, nonce, ciphertext, placement, \
     status, updated_at, expires_at";

#[async_trait]
impl<DB> CredentialStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
    Vec<u8>: Column<DB>,
{
    async fn put_credentials(&self, rows: &[CredentialRow]) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        upsert_credentials(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn credentials(
        &self,
        user_id: &str,
        integration: Option<&str>,
    ) -> StoreResult<Vec<CredentialRow>> {
        let sql = format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE user_id = $1 \
             AND ($2 IS NULL OR integration_id = $2) ORDER BY integration_id, cred_key"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .bind(integration)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(credential_from_row).collect()
    }

    async fn delete_credentials(&self, user_id: &str, integration: &str) -> StoreResult<u64> {
        let done =
            sqlx::query("DELETE FROM credentials WHERE user_id = $1 AND integration_id = $2")
                .bind(user_id)
                .bind(integration)
                .execute(&self.pool)
                .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn all_credentials(&self) -> StoreResult<Vec<CredentialRow>> {
        let sql = format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials ORDER BY user_id, integration_id, cred_key"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(credential_from_row).collect()
    }

    async fn reencrypt_credentials(&self, rows: &[CredentialRow]) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        for row in rows {
            sqlx::query(
                "UPDATE credentials SET key_id = $1, nonce = $2, ciphertext = $3 \
                 WHERE user_id = $4 AND integration_id = $5 AND cred_key = $6",
            )
            .bind(&row.key_id)
            .bind(&row.nonce)
            .bind(&row.ciphertext)
            .bind(&row.user_id)
            .bind(&row.integration_id)
            .bind(&row.cred_key)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_credential_status(
        &self,
        user_id: &str,
        integration: &str,
        status: CredentialStatus,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE credentials SET status = $1, updated_at = $2 WHERE user_id = $3 AND integration_id = $4",
        )
        .bind(status.as_str())
        .bind(now_millis())
        .bind(user_id)
        .bind(integration)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn put_oauth_state(&self, row: &OAuthStateRow) -> StoreResult<()> {
        // Abandoned authorizations are swept as new ones start.
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO oauth_states (state, user_id, integration_id, key_id, nonce, ciphertext, \
             redirect_uri, expires_at, created_at, link_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&row.state)
        .bind(&row.user_id)
        .bind(&row.integration_id)
        .bind(&row.key_id)
        .bind(&row.nonce)
        .bind(&row.ciphertext)
        .bind(&row.redirect_uri)
        .bind(row.expires_at)
        .bind(row.created_at)
        .bind(&row.link_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_oauth_state(&self, state: &str) -> StoreResult<Option<OAuthStateRow>> {
        let row = sqlx::query(
            "DELETE FROM oauth_states WHERE state = $1 RETURNING state, user_id, integration_id, key_id, \
             nonce, ciphertext, redirect_uri, expires_at, created_at, link_id",
        )
        .bind(state)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(OAuthStateRow {
            state: row.try_get("state")?,
            user_id: row.try_get("user_id")?,
            integration_id: row.try_get("integration_id")?,
            key_id: row.try_get("key_id")?,
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("ciphertext")?,
            redirect_uri: row.try_get("redirect_uri")?,
            expires_at: row.try_get("expires_at")?,
            created_at: row.try_get("created_at")?,
            link_id: row.try_get("link_id")?,
        }))
    }

    async fn setup_link_spent(&self, link_id: &str) -> StoreResult<bool> {
        Ok(
            sqlx::query("SELECT link_id FROM spent_setup_links WHERE link_id = $1")
                .bind(link_id)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    async fn put_credentials_through_link(
        &self,
        rows: &[CredentialRow],
        link: &LinkUse,
    ) -> StoreResult<LinkWrite> {
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        if let Some(row) = rows.first() {
            let newer = sqlx::query(
                "SELECT 1 AS newer FROM credentials WHERE user_id = $1 AND integration_id = $2 \
                 AND status = 'connected' AND updated_at > $3 LIMIT 1",
            )
            .bind(&row.user_id)
            .bind(&row.integration_id)
            .bind(link.issued_at)
            .fetch_optional(&mut *tx)
            .await?;
            if newer.is_some() {
                return Ok(LinkWrite::Superseded);
            }
        }
        sqlx::query("DELETE FROM spent_setup_links WHERE expires_at < $1")
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        // Insert-if-absent: of two uses of one link, however close,
        // one finds the id taken and writes nothing.
        let spent = sqlx::query(
            "INSERT INTO spent_setup_links (link_id, expires_at) VALUES ($1, $2) \
             ON CONFLICT (link_id) DO NOTHING",
        )
        .bind(&link.id)
        .bind(link.keep_until)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&spent) == 0 {
            return Ok(LinkWrite::Spent);
        }
        upsert_credentials(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(LinkWrite::Stored)
    }
}

/// Inserts or replaces credential rows in `tx`.
async fn upsert_credentials<DB>(
    tx: &mut sqlx::Transaction<'_, DB>,
    rows: &[CredentialRow],
) -> StoreResult<()>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
    Vec<u8>: Column<DB>,
{
    for row in rows {
        sqlx::query(
            "INSERT INTO credentials (user_id, integration_id, cred_key, key_id, nonce, ciphertext, \
             placement, status, updated_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (user_id, integration_id, cred_key) DO UPDATE SET key_id = excluded.key_id, \
             nonce = excluded.nonce, ciphertext = excluded.ciphertext, placement = excluded.placement, \
             status = excluded.status, updated_at = excluded.updated_at, expires_at = excluded.expires_at",
        )
        .bind(&row.user_id)
        .bind(&row.integration_id)
        .bind(&row.cred_key)
        .bind(&row.key_id)
        .bind(&row.nonce)
        .bind(&row.ciphertext)
        .bind(&row.placement)
        .bind(row.status.as_str())
        .bind(row.updated_at)
        .bind(row.expires_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn credential_from_row<R>(row: &R) -> StoreResult<CredentialRow>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: Column<R::Database>,
    Option<String>: Column<R::Database>,
    i64: Column<R::Database>,
    Option<i64>: Column<R::Database>,
    Vec<u8>: Column<R::Database>,
{
    Ok(CredentialRow {
        user_id: row.try_get("user_id")?,
        integration_id: row.try_get("integration_id")?,
        cred_key: row.try_get("cred_key")?,
        key_id: row.try_get("key_id")?,
        nonce: row.try_get("nonce")?,
        ciphertext: row.try_get("ciphertext")?,
        placement: row.try_get("placement")?,
        status: row
            .try_get::<String, _>("status")?
            .parse()
            .map_err(super::StoreError::Corrupt)?,
        updated_at: row.try_get("updated_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}
