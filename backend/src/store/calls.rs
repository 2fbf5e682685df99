//! The integration calls runs make through the host, as recorded.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::{MethodCallRow, StoreResult};

/// Host-mediated integration calls of runs.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Records a host-mediated integration call of a run.
    async fn insert_method_call(&self, call: &MethodCallRow) -> StoreResult<()>;
    /// The recorded calls of a run, oldest first.
    async fn method_calls(&self, run_id: &str) -> StoreResult<Vec<MethodCallRow>>;
}

#[async_trait]
impl<DB> CallStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
    bool: Column<DB>,
{
    async fn insert_method_call(&self, call: &MethodCallRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO method_calls (id, run_id, integration, method, status, http_status, duration_ms, \
             attempts, refreshed, error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&call.id)
        .bind(&call.run_id)
        .bind(&call.integration)
        .bind(&call.method)
        .bind(&call.status)
        .bind(call.http_status)
        .bind(call.duration_ms)
        .bind(call.attempts)
        .bind(call.refreshed)
        .bind(&call.error)
        .bind(call.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn method_calls(&self, run_id: &str) -> StoreResult<Vec<MethodCallRow>> {
        let rows = sqlx::query(
            "SELECT id, run_id, integration, method, status, http_status, duration_ms, attempts, refreshed, \
             error, created_at FROM method_calls WHERE run_id = $1 ORDER BY created_at, id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MethodCallRow {
                    id: row.try_get("id")?,
                    run_id: row.try_get("run_id")?,
                    integration: row.try_get("integration")?,
                    method: row.try_get("method")?,
                    status: row.try_get("status")?,
                    http_status: row.try_get("http_status")?,
                    duration_ms: row.try_get("duration_ms")?,
                    attempts: row.try_get("attempts")?,
                    refreshed: row.try_get("refreshed")?,
                    error: row.try_get("error")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}
