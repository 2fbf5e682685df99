//! The outbox: the messages runs left, written with their run's end.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use serde::Serialize;

use super::{PageAfter, StoreResult};

/// The outbox.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// A user's outbox, newest first.
    async fn list_messages(
        &self,
        user_id: &str,
        filter: &MessageFilter,
    ) -> StoreResult<Vec<MessageRow>>;
}

#[async_trait]
impl<DB> MessageStore for SqlStore<DB>
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
    async fn list_messages(
        &self,
        user_id: &str,
        filter: &MessageFilter,
    ) -> StoreResult<Vec<MessageRow>> {
        let rows = sqlx::query(
            "SELECT id, user_id, script_id, run_id, channel, recipient, subject, body, created_at \
             FROM messages WHERE user_id = $1 AND ($2 IS NULL OR script_id = $2) \
             AND ($3 IS NULL OR created_at < $3) AND ($4 IS NULL OR (created_at, id) < ($4, $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6",
        )
        .bind(user_id)
        .bind(&filter.script_id)
        .bind(filter.before)
        .bind(filter.after.as_ref().map(|a| a.at))
        .bind(filter.after.as_ref().map(|a| a.id.as_str()))
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MessageRow {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    script_id: row.try_get("script_id")?,
                    run_id: row.try_get("run_id")?,
                    channel: row.try_get("channel")?,
                    recipient: row.try_get("recipient")?,
                    subject: row.try_get("subject")?,
                    body: row.try_get("body")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}

/// A message in a user's outbox (the `messaging` integration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct MessageRow {
    /// Message id.
    pub id: String,
    /// Owner.
    #[serde(skip)]
    pub user_id: String,
    /// Script that sent it.
    pub script_id: String,
    /// Run that sent it.
    pub run_id: String,
    /// Free-form channel label.
    pub channel: Option<String>,
    /// Recipient label.
    #[serde(rename = "to")]
    pub recipient: Option<String>,
    /// Subject line.
    pub subject: Option<String>,
    /// The message.
    pub body: String,
    /// When it was stored (Unix ms).
    pub created_at: i64,
}

/// Filters of `GET /v1/messages`.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Only this script's messages.
    pub script_id: Option<String>,
    /// Only messages stored before this time (Unix ms).
    pub before: Option<i64>,
    /// Only messages listed after this one (the previous page's last).
    pub after: Option<PageAfter>,
    /// Page size.
    pub limit: i64,
}
