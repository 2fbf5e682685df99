//! The JSON bodies of roost's API that both sides read: the server writes
//! them (`http/`), the CLI reads them (`cli/`), from the same types.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::store::{MessageRow, RunRow};

/// `POST /v1/scripts/deploy`'s answer: the version stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// A page of `GET /v1/runs`, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<RunRow>,
    /// The cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// A page of `GET /v1/messages`, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessagePage {
    /// The messages.
    pub messages: Vec<MessageRow>,
    /// The cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and people (`message`).
#[derive(Debug, Clone, Serialize, Deserialize)]
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

impl Page for MessagePage {
    type Item = MessageRow;
    fn into_parts(self) -> (Vec<MessageRow>, Option<String>) {
        (self.messages, self.next_cursor)
    }
}
