//! The audit trail: what was done with each user's credentials.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::{AuditFilter, AuditRow, StoreResult};

/// The audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends audit entries.
    async fn insert_audit(&self, entries: &[AuditRow]) -> StoreResult<()>;
    /// A user's audit trail, newest first.
    async fn list_audit(&self, user_id: &str, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>>;
}

#[async_trait]
impl<DB> AuditStore for SqlStore<DB>
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
{
    async fn insert_audit(&self, entries: &[AuditRow]) -> StoreResult<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        for entry in entries {
            sqlx::query(
                "INSERT INTO audit (id, user_id, action, integration, run_id, detail, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&entry.id)
            .bind(&entry.user_id)
            .bind(&entry.action)
            .bind(&entry.integration)
            .bind(&entry.run_id)
            .bind(&entry.detail)
            .bind(entry.at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(&self, user_id: &str, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT id, user_id, action, integration, run_id, detail, at FROM audit \
             WHERE user_id = $1 AND ($2 IS NULL OR at < $2) AND ($3 IS NULL OR (at, id) < ($3, $4)) \
             ORDER BY at DESC, id DESC LIMIT $5",
        )
        .bind(user_id)
        .bind(filter.before)
        .bind(filter.after.as_ref().map(|a| a.at))
        .bind(filter.after.as_ref().map(|a| a.id.as_str()))
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRow {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    action: row.try_get("action")?,
                    integration: row.try_get("integration")?,
                    run_id: row.try_get("run_id")?,
                    detail: row.try_get("detail")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }
}
