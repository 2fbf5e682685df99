//! The nodes serving a store, as their heartbeats report them.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::{NodeRow, StoreResult};

/// The nodes serving the store.
#[async_trait]
pub trait NodeStore: Send + Sync {
    /// Records that node `row.id` is alive (insert or update).
    async fn node_heartbeat(&self, row: &NodeRow) -> StoreResult<()>;
    /// Every node that ever reported, latest heartbeat first.
    async fn nodes(&self) -> StoreResult<Vec<NodeRow>>;
    /// Forgets nodes silent since before `before` (Unix ms).
    async fn forget_nodes(&self, before: i64) -> StoreResult<u64>;
}

#[async_trait]
impl<DB> NodeStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    i64: Column<DB>,
{
    async fn node_heartbeat(&self, row: &NodeRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO nodes (id, address, version, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, address = excluded.address",
        )
        .bind(&row.id)
        .bind(&row.address)
        .bind(&row.version)
        .bind(row.started_at)
        .bind(row.heartbeat_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn nodes(&self) -> StoreResult<Vec<NodeRow>> {
        let rows = sqlx::query(
            "SELECT id, address, version, started_at, heartbeat_at FROM nodes ORDER BY heartbeat_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(NodeRow {
                    id: row.try_get("id")?,
                    address: row.try_get("address")?,
                    version: row.try_get("version")?,
                    started_at: row.try_get("started_at")?,
                    heartbeat_at: row.try_get("heartbeat_at")?,
                })
            })
            .collect()
    }

    async fn forget_nodes(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM nodes WHERE heartbeat_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done))
    }
}
