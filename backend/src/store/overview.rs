//! What the dashboard's first page counts: each script's failures of a day.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::{RunStatus, StoreError, StoreResult};

/// Counts over a user's runs.
#[async_trait]
pub trait OverviewStore: Send + Sync {
    /// Per script id, the user's runs queued since `since` that ended
    /// failed, timed out or over a limit.
    async fn failures_since(&self, user_id: &str, since: i64) -> StoreResult<Vec<(String, i64)>>;
    /// Each of the user's scripts' name and current version's metadata.
    async fn current_metadata(
        &self,
        user_id: &str,
    ) -> StoreResult<Vec<(String, serde_json::Value)>>;
    /// Every attempt of the user's run `first_run_id` (it and its
    /// retries): id, attempt and status, first attempt first.
    async fn attempts(
        &self,
        user_id: &str,
        first_run_id: &str,
    ) -> StoreResult<Vec<(String, i64, RunStatus)>>;
}

#[async_trait]
impl<DB> OverviewStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    i64: Column<DB>,
{
    async fn failures_since(&self, user_id: &str, since: i64) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT script_id, COUNT(*) AS failures FROM runs \
             WHERE user_id = $1 AND status IN ('failed', 'timed_out', 'limit_exceeded') \
             AND queued_at >= $2 GROUP BY script_id",
        )
        .bind(user_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("script_id")?, row.try_get("failures")?)))
            .collect()
    }

    async fn attempts(
        &self,
        user_id: &str,
        first_run_id: &str,
    ) -> StoreResult<Vec<(String, i64, RunStatus)>> {
        let rows = sqlx::query(
            "SELECT id, attempt, status FROM runs WHERE user_id = $1 AND id = $2 \
             UNION ALL \
             SELECT id, attempt, status FROM runs WHERE user_id = $1 AND first_run_id = $2 \
             ORDER BY attempt",
        )
        .bind(user_id)
        .bind(first_run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                let status = status
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("run status `{status}`")))?;
                Ok((row.try_get("id")?, row.try_get("attempt")?, status))
            })
            .collect()
    }

    async fn current_metadata(
        &self,
        user_id: &str,
    ) -> StoreResult<Vec<(String, serde_json::Value)>> {
        let rows = sqlx::query(
            "SELECT s.name, v.metadata FROM scripts s \
             JOIN script_versions v ON v.script_id = s.id AND v.version = s.current_version \
             WHERE s.user_id = $1 ORDER BY s.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let metadata: String = row.try_get("metadata")?;
                let metadata = serde_json::from_str(&metadata)
                    .map_err(|e| StoreError::Corrupt(format!("version metadata: {e}")))?;
                Ok((row.try_get("name")?, metadata))
            })
            .collect()
    }
}
