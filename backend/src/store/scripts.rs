//! Scripts, their immutable versions, their triggers and their settings.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore, conflict};
use super::{
    NewScriptVersion, RetryPolicy, Script, ScriptLimits, ScriptSettings, ScriptVersion, StoreError,
    StoreResult, TriggerRow, new_id, now_millis,
};

/// Scripts and their versions.
#[async_trait]
pub trait ScriptStore: Send + Sync {
    /// Stores a new immutable version of a script (creating the script on its
    /// first deploy), makes it current and replaces the script's triggers,
    /// all in one transaction.
    async fn create_script_version(&self, new: &NewScriptVersion) -> StoreResult<ScriptVersion>;
    /// A user's scripts.
    async fn list_scripts(&self, user_id: &str) -> StoreResult<Vec<Script>>;
    /// One script of a user.
    async fn get_script(&self, user_id: &str, script_id: &str) -> StoreResult<Option<Script>>;
    /// A script's versions, newest first (without component bytes).
    async fn list_versions(
        &self,
        user_id: &str,
        script_id: &str,
    ) -> StoreResult<Vec<ScriptVersion>>;
    /// Makes an existing version current again, with `triggers` (those it
    /// declares) as the script's; None if the user's script has no such
    /// version.
    async fn set_current_version(
        &self,
        user_id: &str,
        script_id: &str,
        version: i64,
        triggers: &[TriggerRow],
    ) -> StoreResult<Option<Script>>;
    /// Deletes a script with its versions and triggers.
    async fn delete_script(&self, user_id: &str, script_id: &str) -> StoreResult<bool>;
    /// Triggers of a script's current version.
    async fn triggers(&self, script_id: &str) -> StoreResult<Vec<TriggerRow>>;
    /// A version's component bytes and metadata.
    async fn version_component(
        &self,
        script_id: &str,
        version: i64,
    ) -> StoreResult<Option<(Vec<u8>, serde_json::Value)>>;
    /// A script's retry policy and limits.
    async fn script_settings(&self, script_id: &str) -> StoreResult<Option<ScriptSettings>>;
}

const SCRIPT_COLUMNS: &str = "id, user_id, name, current_version, created_at, updated_at";

#[async_trait]
impl<DB> ScriptStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
    Vec<u8>: Column<DB>,
{
    async fn create_script_version(&self, new: &NewScriptVersion) -> StoreResult<ScriptVersion> {
        let now = now_millis();
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        let existing = sqlx::query("SELECT id FROM scripts WHERE user_id = $1 AND name = $2")
            .bind(&new.user_id)
            .bind(&new.name)
            .fetch_optional(&mut *tx)
            .await?;
        let script_id: String = match existing {
            Some(row) => row.try_get("id")?,
            None => {
                if let Some(max) = new.caps.max_scripts {
                    // Deploys of one user take turns here.
                    if let Some(lock) = DB::USER_LOCK_SQL {
                        sqlx::query(lock)
                            .bind(&new.user_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let scripts: i64 =
                        sqlx::query("SELECT COUNT(*) AS n FROM scripts WHERE user_id = $1")
                            .bind(&new.user_id)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get("n")?;
                    if scripts >= max {
                        return Err(StoreError::ScriptQuota { scripts });
                    }
                }
                let id = new_id("scr");
                sqlx::query(
                    "INSERT INTO scripts (id, user_id, name, current_version, created_at, updated_at) \
                     VALUES ($1, $2, $3, 0, $4, $4)",
                )
                .bind(&id)
                .bind(&new.user_id)
                .bind(&new.name)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict(e, "a concurrent deploy of this script"))?;
                id
            }
        };
        let version: i64 = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) AS v FROM script_versions WHERE script_id = $1",
        )
        .bind(&script_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>("v")?
            + 1;
        sqlx::query(
            "INSERT INTO script_versions (script_id, version, content_hash, component, metadata, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&script_id)
        .bind(version)
        .bind(&new.content_hash)
        .bind(&new.component)
        .bind(new.metadata.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, "a concurrent deploy of this script"))?;
        sqlx::query("UPDATE scripts SET current_version = $1, updated_at = $2 WHERE id = $3")
            .bind(version)
            .bind(now)
            .bind(&script_id)
            .execute(&mut *tx)
            .await?;
        if let Some(limits) = &new.limits {
            sqlx::query(
                "UPDATE scripts SET timeout_ms = $1, memory_bytes = $2, output_bytes = $3 WHERE id = $4",
            )
            .bind(limits.timeout_ms)
            .bind(limits.memory_bytes)
            .bind(limits.output_bytes)
            .bind(&script_id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(retries) = &new.retries {
            sqlx::query("UPDATE scripts SET max_retries = $1, retry_on_limits = $2 WHERE id = $3")
                .bind(retries.max)
                .bind(i64::from(retries.on_limits))
                .bind(&script_id)
                .execute(&mut *tx)
                .await?;
        }
        replace_triggers(&mut tx, &script_id, &new.triggers).await?;
        if let Some(keep) = new.caps.max_versions {
            // The newest `keep` stay (the one just made is current).
            sqlx::query("DELETE FROM script_versions WHERE script_id = $1 AND version <= $2")
                .bind(&script_id)
                .bind(version - keep)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.endpoints_changed();
        Ok(ScriptVersion {
            script_id,
            version,
            content_hash: new.content_hash.clone(),
            metadata: new.metadata.clone(),
            created_at: now,
        })
    }

    async fn list_scripts(&self, user_id: &str) -> StoreResult<Vec<Script>> {
        let sql = format!("SELECT {SCRIPT_COLUMNS} FROM scripts WHERE user_id = $1 ORDER BY name");
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(script_from_row).collect()
    }

    async fn get_script(&self, user_id: &str, script_id: &str) -> StoreResult<Option<Script>> {
        let sql = format!("SELECT {SCRIPT_COLUMNS} FROM scripts WHERE user_id = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(user_id)
            .bind(script_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(script_from_row).transpose()
    }

    async fn list_versions(
        &self,
        user_id: &str,
        script_id: &str,
    ) -> StoreResult<Vec<ScriptVersion>> {
        let rows = sqlx::query(
            "SELECT v.script_id, v.version, v.content_hash, v.metadata, v.created_at \
             FROM script_versions v JOIN scripts s ON s.id = v.script_id \
             WHERE s.user_id = $1 AND s.id = $2 ORDER BY v.version DESC",
        )
        .bind(user_id)
        .bind(script_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ScriptVersion {
                    script_id: row.try_get("script_id")?,
                    version: row.try_get("version")?,
                    content_hash: row.try_get("content_hash")?,
                    metadata: metadata(row.try_get("metadata")?)?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn set_current_version(
        &self,
        user_id: &str,
        script_id: &str,
        version: i64,
        triggers: &[TriggerRow],
    ) -> StoreResult<Option<Script>> {
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        let found = sqlx::query(
            "SELECT v.version FROM script_versions v JOIN scripts s ON s.id = v.script_id \
             WHERE s.user_id = $1 AND s.id = $2 AND v.version = $3",
        )
        .bind(user_id)
        .bind(script_id)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(None);
        }
        sqlx::query("UPDATE scripts SET current_version = $1, updated_at = $2 WHERE id = $3")
            .bind(version)
            .bind(now_millis())
            .bind(script_id)
            .execute(&mut *tx)
            .await?;
        replace_triggers(&mut tx, script_id, triggers).await?;
        tx.commit().await?;
        self.endpoints_changed();
        self.get_script(user_id, script_id).await
    }

    async fn delete_script(&self, user_id: &str, script_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        let done = sqlx::query("DELETE FROM scripts WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(script_id)
            .execute(&mut *tx)
            .await?;
        // Its pending runs go with it; finished ones stay as history.
        sqlx::query(
            "UPDATE runs SET status = 'cancelled', finished_at = $1, error = 'the script was deleted' \
             WHERE script_id = $2 AND user_id = $3 AND status IN ('queued', 'running')",
        )
        .bind(now_millis())
        .bind(script_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.endpoints_changed();
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn triggers(&self, script_id: &str) -> StoreResult<Vec<TriggerRow>> {
        let rows = sqlx::query(
            "SELECT handler, kind, spec, timezone, flow FROM triggers WHERE script_id = $1 ORDER BY handler",
        )
        .bind(script_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TriggerRow {
                    handler: row.try_get("handler")?,
                    kind: row
                        .try_get::<String, _>("kind")?
                        .parse()
                        .map_err(StoreError::Corrupt)?,
                    spec: row.try_get("spec")?,
                    timezone: row.try_get("timezone")?,
                    flow: row.try_get("flow")?,
                })
            })
            .collect()
    }

    async fn version_component(
        &self,
        script_id: &str,
        version: i64,
    ) -> StoreResult<Option<(Vec<u8>, serde_json::Value)>> {
        let row = sqlx::query(
            "SELECT component, metadata FROM script_versions WHERE script_id = $1 AND version = $2",
        )
        .bind(script_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((
            row.try_get("component")?,
            metadata(row.try_get("metadata")?)?,
        )))
    }

    async fn script_settings(&self, script_id: &str) -> StoreResult<Option<ScriptSettings>> {
        let row = sqlx::query(
            "SELECT max_retries, retry_on_limits, timeout_ms, memory_bytes, output_bytes \
             FROM scripts WHERE id = $1",
        )
        .bind(script_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ScriptSettings {
            retries: RetryPolicy {
                max: row.try_get("max_retries")?,
                on_limits: row.try_get::<i64, _>("retry_on_limits")? != 0,
            },
            limits: ScriptLimits {
                timeout_ms: row.try_get("timeout_ms")?,
                memory_bytes: row.try_get("memory_bytes")?,
                output_bytes: row.try_get("output_bytes")?,
            },
        }))
    }
}

/// Deletes a script's triggers and inserts the given ones, in `tx`.
async fn replace_triggers<DB>(
    tx: &mut sqlx::Transaction<'_, DB>,
    script_id: &str,
    triggers: &[TriggerRow],
) -> StoreResult<()>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
{
    sqlx::query("DELETE FROM triggers WHERE script_id = $1")
        .bind(script_id)
        .execute(&mut **tx)
        .await?;
    for trigger in triggers {
        sqlx::query(
            "INSERT INTO triggers (script_id, handler, kind, spec, timezone, flow) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(script_id)
        .bind(&trigger.handler)
        .bind(trigger.kind.as_str())
        .bind(&trigger.spec)
        .bind(&trigger.timezone)
        .bind(&trigger.flow)
        .execute(&mut **tx)
        .await?;
        if trigger.kind == super::TriggerKind::Http {
            sqlx::query(super::http_endpoints::ENSURE_ENDPOINT_SQL)
                .bind(super::http_endpoints::new_endpoint_token())
                .bind(script_id)
                .bind(&trigger.handler)
                .bind(super::now_millis())
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// A version's metadata, stored as JSON text.
fn metadata(stored: String) -> StoreResult<serde_json::Value> {
    serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt(format!("version metadata: {e}")))
}

fn script_from_row<R>(row: &R) -> StoreResult<Script>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: Column<R::Database>,
    i64: Column<R::Database>,
{
    Ok(Script {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        current_version: row.try_get("current_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
