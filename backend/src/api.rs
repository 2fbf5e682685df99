//! The JSON bodies of roost's API that both sides read: the server writes
//! them (`http/`), the CLI reads them (`cli/`), from the same types.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::store::{
    MessageRow, ReplayedRun, RunRow, SkippedRun, StateEntry, StateQuota, StateUsage,
};

/// `POST /v1/scripts/deploy`'s answer: the version stored.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deployed {
    /// The script (the same across versions).
    pub script_id: String,
    /// The new version's number.
    pub version: i64,
    /// SHA-256 of the component.
    pub content_hash: String,
    /// When it was stored (Unix ms).
    pub created_at: i64,
    /// The handlers, triggers and integrations the component declares.
    pub metadata: serde_json::Value,
    /// What the user should know before the script runs with their accounts.
    pub notices: Vec<String>,
}

/// `POST /v1/runs/replay`'s answer: the runs queued again (on a dry run,
/// that would be, without new ids) and the runs matched but skipped.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayAnswer {
    /// Whether nothing was queued on purpose.
    pub dry_run: bool,
    /// Runs the filter matched (queued and skipped).
    pub matched: i64,
    /// Each original with its new run.
    pub queued: Vec<ReplayedRun>,
    /// Each run matched and not queued, with why.
    pub skipped: Vec<SkippedRun>,
}

/// A page of `GET /v1/runs`, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<RunRow>,
    /// The cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// A page of `GET /v1/messages`, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessagePage {
    /// The messages.
    pub messages: Vec<MessageRow>,
    /// The cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// One entry of a script's state, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateEntryView {
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: serde_json::Value,
    /// When it is forgotten (Unix ms), if ever.
    pub expires_at: Option<i64>,
    /// When it was written (Unix ms).
    pub updated_at: i64,
    /// The run whose success wrote it; none when written through the API.
    pub run_id: Option<String>,
}

impl From<StateEntry> for StateEntryView {
    fn from(entry: StateEntry) -> Self {
        Self {
            value: serde_json::from_str(&entry.value).unwrap_or(serde_json::Value::Null),
            key: entry.key,
            expires_at: entry.expires_at,
            updated_at: entry.updated_at,
            run_id: entry.run_id,
        }
    }
}

/// A page of `GET /v1/scripts/{id}/state`, in key order.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatePage {
    /// The entries.
    pub entries: Vec<StateEntryView>,
    /// The cursor of the next page (the last key), if there may be one.
    pub next_cursor: Option<String>,
    /// What the script's state takes.
    pub usage: StateUsage,
    /// The most it may take.
    pub quota: StateQuota,
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and people (`message`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, stable (`not_found`, `queue_full`…).
    pub code: String,
    /// One sentence saying what to do next.
    pub message: String,
    /// More, where an error has it (the setup links a deploy needs…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// A listing that comes in pages, each naming the next.
pub trait Page: DeserializeOwned {
    /// What the listing lists.
    type Item;
    /// The page's items and the next page's cursor.
    fn into_parts(self) -> (Vec<Self::Item>, Option<String>);
}

impl Page for RunPage {
    type Item = RunRow;
    fn into_parts(self) -> (Vec<RunRow>, Option<String>) {
        (self.runs, self.next_cursor)
    }
}

impl Page for StatePage {
    type Item = StateEntryView;
    fn into_parts(self) -> (Vec<StateEntryView>, Option<String>) {
        (self.entries, self.next_cursor)
    }
}

impl Page for MessagePage {
    type Item = MessageRow;
    fn into_parts(self) -> (Vec<MessageRow>, Option<String>) {
        (self.messages, self.next_cursor)
    }
}
