//! Integration definitions, and which provider account each user's
//! connection is for.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::{DefinitionRow, StoreResult, now_millis};

/// Integration definitions and connected accounts.
#[async_trait]
pub trait IntegrationStore: Send + Sync {
    /// Inserts or replaces an integration definition (unique on its id).
    async fn upsert_integration_definition(&self, row: &DefinitionRow) -> StoreResult<()>;
    /// All stored integration definitions.
    async fn integration_definitions(&self) -> StoreResult<Vec<DefinitionRow>>;
    /// Records the provider account (`account_id`, and `app_id` where the
    /// provider has one) user `user_id`'s `integration` connection is for.
    async fn bind_account(
        &self,
        user_id: &str,
        integration: &str,
        account_id: &str,
        app_id: Option<&str>,
    ) -> StoreResult<()>;
    /// The (account id, app id) a user's connection of `integration` is for.
    async fn bound_account(
        &self,
        user_id: &str,
        integration: &str,
    ) -> StoreResult<Option<(String, Option<String>)>>;
}

#[async_trait]
impl<DB> IntegrationStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    String: Column<DB>,
    i64: Column<DB>,
{
    async fn upsert_integration_definition(&self, row: &DefinitionRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO integration_definitions (integration_id, version, definition, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (integration_id) DO UPDATE SET \
             version = excluded.version, definition = excluded.definition, updated_at = excluded.updated_at",
        )
        .bind(&row.integration_id)
        .bind(&row.version)
        .bind(&row.definition)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn integration_definitions(&self) -> StoreResult<Vec<DefinitionRow>> {
        let rows = sqlx::query(
            "SELECT integration_id, version, definition, updated_at FROM integration_definitions \
             ORDER BY integration_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DefinitionRow {
                    integration_id: row.try_get("integration_id")?,
                    version: row.try_get("version")?,
                    definition: row.try_get("definition")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn bind_account(
        &self,
        user_id: &str,
        integration: &str,
        account_id: &str,
        app_id: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO connected_accounts (user_id, integration_id, account_id, app_id, connected_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, integration_id) DO UPDATE SET \
             account_id = excluded.account_id, app_id = excluded.app_id, connected_at = excluded.connected_at",
        )
        .bind(user_id)
        .bind(integration)
        .bind(account_id)
        .bind(app_id)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn bound_account(
        &self,
        user_id: &str,
        integration: &str,
    ) -> StoreResult<Option<(String, Option<String>)>> {
        let row = sqlx::query(
            "SELECT account_id, app_id FROM connected_accounts WHERE user_id = $1 AND integration_id = $2",
        )
        .bind(user_id)
        .bind(integration)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => Some((row.try_get("account_id")?, row.try_get("app_id")?)),
            None => None,
        })
    }
}
