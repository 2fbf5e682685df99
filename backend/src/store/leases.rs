//! Leases (work one node of a cluster does at a time) and the OAuth
//! credentials that expire soon, for the background refresh.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::StoreResult;
use super::engine::{Column, Engine, SqlStore};

#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes (or keeps) lease `name` for `holder` until `until`: true when
    /// it is `holder`'s now, false while another holder's has not ended.
    async fn take_lease(&self, name: &str, holder: &str, until: i64, now: i64)
    -> StoreResult<bool>;
    /// (user, integration) of each connected credential whose expiry is
    /// before `before`.
    async fn expiring_credentials(&self, before: i64) -> StoreResult<Vec<(String, String)>>;
}

#[async_trait]
impl<DB> LeaseStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    i64: Column<DB>,
{
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        until: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE leases.holder = excluded.holder OR leases.until < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn expiring_credentials(&self, before: i64) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT user_id, integration_id FROM credentials \
             WHERE expires_at IS NOT NULL AND expires_at <= $1 AND status = 'connected'",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("user_id")?, row.try_get("integration_id")?)))
            .collect()
    }
}
