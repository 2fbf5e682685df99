//! Webhook subscriptions roost made at providers for users, and the event
//! types users' scripts listen for that decide them.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::{StoreResult, now_millis};

/// One subscription: its key (scope, topics) and the provider's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    /// The `each` item it is for (a repository), or empty.
    pub scope: String,
    /// Its topics, comma-separated and sorted.
    pub topics: String,
    /// The provider's id (JSON) once created.
    pub remote_id: Option<String>,
    /// When it was claimed (Unix ms).
    pub created_at: i64,
}

/// Which subscription: a user's, of an integration, for a scope and topics.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionKey<'a> {
    /// Whose.
    pub user_id: &'a str,
    /// Of which integration.
    pub integration: &'a str,
    /// The `each` item, or empty.
    pub scope: &'a str,
    /// Its topics, comma-separated and sorted.
    pub topics: &'a str,
}

/// Webhook subscriptions.
#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// The event types starting with `prefix` that current versions of the
    /// user's scripts take, sorted.
    async fn listened_event_types(&self, user_id: &str, prefix: &str) -> StoreResult<Vec<String>>;
    /// Users whose subscriptions of `integration` may need work: those
    /// with a credential of it, and those with subscriptions on record.
    async fn subscription_users(&self, integration: &str) -> StoreResult<Vec<String>>;
    /// The user's subscriptions of `integration`.
    async fn subscriptions(
        &self,
        user_id: &str,
        integration: &str,
    ) -> StoreResult<Vec<SubscriptionRow>>;
    /// Claims a subscription before the provider is asked for it: true if
    /// this call recorded it, false if it was there already.
    async fn claim_subscription(&self, key: SubscriptionKey<'_>) -> StoreResult<bool>;
    /// Records the provider's id of a claimed subscription.
    async fn subscription_created(
        &self,
        key: SubscriptionKey<'_>,
        remote_id: &str,
    ) -> StoreResult<()>;
    /// Forgets a subscription: true if this call removed it.
    async fn drop_subscription(&self, key: SubscriptionKey<'_>) -> StoreResult<bool>;
}

#[async_trait]
impl<DB> SubscriptionStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
{
    async fn listened_event_types(&self, user_id: &str, prefix: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT t.spec FROM triggers t JOIN scripts s ON s.id = t.script_id \
             WHERE s.user_id = $1 AND t.kind = 'event' AND substr(t.spec, 1, CAST($2 AS INTEGER)) = $3 \
             ORDER BY t.spec",
        )
        .bind(user_id)
        .bind(prefix.len() as i64)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get("spec")?)).collect()
    }

    async fn subscription_users(&self, integration: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT user_id FROM credentials WHERE integration_id = $1 \
             UNION SELECT user_id FROM webhook_subscriptions WHERE integration_id = $1",
        )
        .bind(integration)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get("user_id")?)).collect()
    }

    async fn subscriptions(
        &self,
        user_id: &str,
        integration: &str,
    ) -> StoreResult<Vec<SubscriptionRow>> {
        let rows = sqlx::query(
            "SELECT scope, topics, remote_id, created_at FROM webhook_subscriptions \
             WHERE user_id = $1 AND integration_id = $2 ORDER BY scope, topics",
        )
        .bind(user_id)
        .bind(integration)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SubscriptionRow {
                    scope: row.try_get("scope")?,
                    topics: row.try_get("topics")?,
                    remote_id: row.try_get("remote_id")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn claim_subscription(&self, key: SubscriptionKey<'_>) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO webhook_subscriptions (user_id, integration_id, scope, topics, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(key.user_id)
        .bind(key.integration)
        .bind(key.scope)
        .bind(key.topics)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn subscription_created(
        &self,
        key: SubscriptionKey<'_>,
        remote_id: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE webhook_subscriptions SET remote_id = $5 \
             WHERE user_id = $1 AND integration_id = $2 AND scope = $3 AND topics = $4",
        )
        .bind(key.user_id)
        .bind(key.integration)
        .bind(key.scope)
        .bind(key.topics)
        .bind(remote_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn drop_subscription(&self, key: SubscriptionKey<'_>) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM webhook_subscriptions \
             WHERE user_id = $1 AND integration_id = $2 AND scope = $3 AND topics = $4",
        )
        .bind(key.user_id)
        .bind(key.integration)
        .bind(key.scope)
        .bind(key.topics)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) > 0)
    }
}
