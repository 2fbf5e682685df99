//! Received events and webhook deliveries, kept for their idempotency
//! window. Turning an event into runs is the run queue's (queue.rs).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::{EventRow, StoreError, StoreResult, now_millis};

/// Received events and webhook deliveries.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// One of the user's received events.
    async fn get_event(&self, user_id: &str, event_id: &str) -> StoreResult<Option<EventRow>>;
    /// Forgets events (and webhook deliveries) received before `before`
    /// (end of the idempotency window).
    async fn purge_events(&self, before: i64) -> StoreResult<u64>;
    /// Records webhook delivery `delivery_id` of `source` for `user_id` if
    /// it is new; returns the user it was first delivered for.
    async fn claim_delivery(
        &self,
        source: &str,
        delivery_id: &str,
        user_id: &str,
    ) -> StoreResult<String>;
    /// Records delivery `delivery_id` of `source` for `user_id`: true if it
    /// is new, false if it was recorded before (a replay).
    async fn first_delivery(
        &self,
        source: &str,
        delivery_id: &str,
        user_id: &str,
    ) -> StoreResult<bool>;
}

#[async_trait]
impl<DB> EventStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
{
    async fn get_event(&self, user_id: &str, event_id: &str) -> StoreResult<Option<EventRow>> {
        let row = sqlx::query(
            "SELECT event_id, event_type, source, received_at, run_ids, source_run_id, chain_depth, \
             stopped FROM events WHERE user_id = $1 AND event_id = $2",
        )
        .bind(user_id)
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(EventRow {
            event_id: row.try_get("event_id")?,
            event_type: row.try_get("event_type")?,
            source: row.try_get("source")?,
            received_at: row.try_get("received_at")?,
            run_ids: run_ids(&row.try_get::<String, _>("run_ids")?)?,
            source_run_id: row.try_get("source_run_id")?,
            chain_depth: row.try_get("chain_depth")?,
            stopped: row.try_get("stopped")?,
        }))
    }

    async fn purge_events(&self, before: i64) -> StoreResult<u64> {
        sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        let done = sqlx::query("DELETE FROM events WHERE received_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn claim_delivery(
        &self,
        source: &str,
        delivery_id: &str,
        user_id: &str,
    ) -> StoreResult<String> {
        self.first_delivery(source, delivery_id, user_id).await?;
        Ok(sqlx::query(
            "SELECT user_id FROM webhook_deliveries WHERE source = $1 AND delivery_id = $2",
        )
        .bind(source)
        .bind(delivery_id)
        .fetch_one(&self.pool)
        .await?
        .try_get("user_id")?)
    }

    async fn first_delivery(
        &self,
        source: &str,
        delivery_id: &str,
        user_id: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO webhook_deliveries (source, delivery_id, user_id, received_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (source, delivery_id) DO NOTHING",
        )
        .bind(source)
        .bind(delivery_id)
        .bind(user_id)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) > 0)
    }
}

/// The runs an event made, stored as a JSON list of ids.
pub(super) fn run_ids(stored: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(stored).map_err(|e| StoreError::Corrupt(format!("event run ids: {e}")))
}
