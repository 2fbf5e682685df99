//! Gmail: search and read the user's mailbox, and send mail as them.
//!
//! ```ignore
//! let gmail = roost_sdk::gmail::init!();
//! let unread = gmail.list_messages(&ListMessages { q: Some("is:unread".into()), ..Default::default() })?;
//! for found in unread.messages {
//!     let message = gmail.get_message(&GetMessage::metadata(&found.id))?;
//!     println!("{}: {}", message.header("From").unwrap_or("?"), message.header("Subject").unwrap_or(""));
//! }
//! ```
//!
//! `init!()` declares `gmail` in the script's metadata, so deploy asks the
//! user to connect Gmail; the token (`GMAIL_ACCESS_TOKEN`) is read on first
//! use. Methods and shapes follow roost's `gmail` definition (`roost
//! integrations docs gmail`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::http::Query;
use crate::integration::{Defaults, ErrorKind, IntegrationError, LazyConnection};

/// Declares `gmail` and returns a [`Gmail`] client.
#[doc(inline)]
pub use crate::__gmail_init as init;

#[doc(hidden)]
#[macro_export]
macro_rules! __gmail_init {
    () => {{
        $crate::__declare_integration!("gmail");
        $crate::gmail::Gmail::new()
    }};
}

const DEFAULTS: Defaults = Defaults {
    integration: "gmail",
    base_url: Some("https://gmail.googleapis.com"),
    bearer_env: Some("GMAIL_ACCESS_TOKEN"),
};

/// A Gmail client for the connected account. Build it with [`init!`].
#[derive(Debug)]
pub struct Gmail {
    connection: LazyConnection,
}

/// Input of [`Gmail::list_messages`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ListMessages {
    /// Gmail search query, as typed in Gmail's search box (`is:unread`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// At most this many messages (1 to 500; Gmail's default is 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u32>,
    /// Only messages carrying all these labels (`INBOX`, `UNREAD`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_ids: Vec<String>,
    /// `next_page_token` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    /// Include spam and trash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_spam_trash: Option<bool>,
}

/// A page of message ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MessageList {
    /// The matches on this page (ids only; Gmail omits the field when empty).
    #[serde(default)]
    pub messages: Vec<MessageRef>,
    /// Token for the next page; absent on the last.
    #[serde(default)]
    pub next_page_token: Option<String>,
    /// Gmail's estimate of the total.
    #[serde(default)]
    pub result_size_estimate: Option<i64>,
}

/// A message id and its thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MessageRef {
    /// Message id.
    pub id: String,
    /// Thread id.
    pub thread_id: String,
}

/// How much of a message [`Gmail::get_message`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum MessageFormat {
    /// Ids and labels.
    Minimal,
    /// The parsed MIME tree with bodies.
    Full,
    /// The RFC 2822 source in `raw`.
    Raw,
    /// Headers only.
    Metadata,
}

impl MessageFormat {
    fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Full => "full",
            Self::Raw => "raw",
            Self::Metadata => "metadata",
        }
    }
}

/// Input of [`Gmail::get_message`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GetMessage {
    /// Message id, from [`Gmail::list_messages`].
    pub id: String,
    /// How much to return (Gmail's default is `full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<MessageFormat>,
}

impl GetMessage {
    /// The whole message.
    pub fn full(id: &str) -> Self {
        Self {
            id: id.to_string(),
            format: Some(MessageFormat::Full),
        }
    }

    /// Headers and snippet only: cheaper for listings.
    pub fn metadata(id: &str) -> Self {
        Self {
            id: id.to_string(),
            format: Some(MessageFormat::Metadata),
        }
    }
}

/// A message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Message id.
    pub id: String,
    /// Thread id.
    pub thread_id: String,
    /// Labels on the message.
    #[serde(default)]
    pub label_ids: Vec<String>,
    /// A short plain-text excerpt.
    #[serde(default)]
    pub snippet: Option<String>,
    /// Id of the last history record that changed the message.
    #[serde(default)]
    pub history_id: Option<String>,
    /// Receive time, milliseconds since the epoch (as a string).
    #[serde(default)]
    pub internal_date: Option<String>,
    /// Estimated size in bytes.
    #[serde(default)]
    pub size_estimate: Option<i64>,
    /// The RFC 2822 source, base64url (`format: raw` only).
    #[serde(default)]
    pub raw: Option<String>,
    /// The MIME tree (`full` and `metadata`).
    #[serde(default)]
    pub payload: Option<MessagePart>,
}

/// One MIME part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MessagePart {
    /// MIME type (`text/plain`, `multipart/alternative`).
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Headers of this part.
    #[serde(default)]
    pub headers: Vec<Header>,
    /// The body; empty for multipart containers.
    #[serde(default)]
    pub body: Option<PartBody>,
    /// Child parts.
    #[serde(default)]
    pub parts: Vec<MessagePart>,
}

/// A message header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Header {
    /// Header name (`Subject`).
    pub name: String,
    /// Header value.
    pub value: String,
}

/// The body of a part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PartBody {
    /// Set when the body is a separate attachment.
    #[serde(default)]
    pub attachment_id: Option<String>,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<i64>,
    /// The data, base64url.
    #[serde(default)]
    pub data: Option<String>,
}

impl Message {
    /// The first top-level header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.payload.as_ref().and_then(|part| {
            part.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str())
        })
    }

    /// The first `text/plain` body, decoded (`format: full`).
    pub fn plain_text(&self) -> Option<String> {
        fn find(part: &MessagePart) -> Option<String> {
            if part.mime_type.as_deref() == Some("text/plain") {
                let data = part.body.as_ref()?.data.as_deref()?;
                let bytes = decode_base64url(data)?;
                return Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            part.parts.iter().find_map(find)
        }
        self.payload.as_ref().and_then(find)
    }
}

/// Input of [`Gmail::send_message`]: a plain-text email.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SendMessage {
    /// Recipients, comma-separated.
    pub to: String,
    /// Subject line (any Unicode).
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// The message Gmail sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SentMessage {
    /// Id of the sent message.
    pub id: String,
    /// Its thread.
    pub thread_id: String,
    /// Its labels (`SENT`).
    #[serde(default)]
    pub label_ids: Vec<String>,
}

impl Gmail {
    /// A client that connects on first use. Prefer [`init!`], which also
    /// declares the integration; this alone does not.
    pub const fn new() -> Self {
        Self {
            connection: LazyConnection::new(DEFAULTS),
        }
    }

    /// Lists message ids matching `input` (`list_messages`).
    pub fn list_messages(&self, input: &ListMessages) -> Result<MessageList, IntegrationError> {
        if self.connection.host_only() {
            return self.connection.on_host().call("list_messages", input);
        }
        let query = Query::new()
            .push_opt("q", input.q.as_deref())
            .push_opt("maxResults", input.max_results)
            .push_each("labelIds", &input.label_ids)
            .push_opt("pageToken", input.page_token.as_deref())
            .push_opt("includeSpamTrash", input.include_spam_trash);
        self.connection.get()?.call(
            "GET",
            &query.to_path("/gmail/v1/users/me/messages"),
            None::<&()>,
        )
    }

    /// Fetches one message (`get_message`).
    pub fn get_message(&self, input: &GetMessage) -> Result<Message, IntegrationError> {
        if input.id.is_empty() || input.id.contains(['/', '?', '#']) {
            return Err(invalid(format!("`{}` is not a message id", input.id)));
        }
        if self.connection.host_only() {
            return self.connection.on_host().call("get_message", input);
        }
        let query = Query::new().push_opt("format", input.format.map(MessageFormat::as_str));
        self.connection.get()?.call(
            "GET",
            &query.to_path(&format!("/gmail/v1/users/me/messages/{}", input.id)),
            None::<&()>,
        )
    }

    /// Sends a plain-text email (`send_message`): roost builds the RFC 2822
    /// message and sends it base64url-encoded.
    pub fn send_message(&self, input: &SendMessage) -> Result<SentMessage, IntegrationError> {
        let raw = rfc2822(input)?;
        if self.connection.host_only() {
            return self.connection.on_host().call("send_message", input);
        }
        let body = serde_json::json!({
            "raw": base64::engine::general_purpose::URL_SAFE.encode(raw),
        });
        self.connection
            .get()?
            .call("POST", "/gmail/v1/users/me/messages/send", Some(&body))
    }
}

impl Default for Gmail {
    fn default() -> Self {
        Self::new()
    }
}

fn invalid(why: String) -> IntegrationError {
    IntegrationError::new("gmail", ErrorKind::InvalidInput(why))
}

/// The message as RFC 2822 text. Header values with a line break would let
/// the caller add headers of their own (`Bcc:`), so they are refused.
fn rfc2822(input: &SendMessage) -> Result<String, IntegrationError> {
    for (field, value) in [("to", &input.to), ("subject", &input.subject)] {
        if value.contains(['\r', '\n']) {
            return Err(invalid(format!("`{field}` must be a single line")));
        }
    }
    if input.to.trim().is_empty() {
        return Err(invalid("`to` names no recipient".into()));
    }
    let subject = if input.subject.is_ascii() {
        input.subject.clone()
    } else {
        // RFC 2047 encoded-word: headers are ASCII on the wire.
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(&input.subject)
        )
    };
    let body = input.body.replace("\r\n", "\n").replace('\n', "\r\n");
    Ok(format!(
        "To: {}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; \
         charset=\"UTF-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}",
        input.to.trim()
    ))
}

fn decode_base64url(data: &str) -> Option<Vec<u8>> {
    let trimmed = data.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .ok()
}

/// The SDK's methods with the schemas of their types, to compare with the
/// `gmail` definition.
#[cfg(feature = "schema")]
pub fn method_schemas() -> Vec<crate::integration::MethodSchema> {
    use crate::integration::MethodSchema;
    vec![
        MethodSchema::of::<ListMessages, MessageList>("list_messages"),
        MethodSchema::of::<GetMessage, Message>("get_message"),
        MethodSchema::of::<SendMessage, SentMessage>("send_message"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_rfc2822_and_refuses_header_injection() {
        let raw = rfc2822(&SendMessage {
            to: "ada@example.com".into(),
            subject: "Déjà vu".into(),
            body: "line one\nline two".into(),
        })
        .unwrap();
        assert!(raw.starts_with("To: ada@example.com\r\nSubject: =?UTF-8?B?"));
        assert!(raw.ends_with("\r\n\r\nline one\r\nline two"));
        let err = rfc2822(&SendMessage {
            to: "ada@example.com\r\nBcc: eve@example.com".into(),
            subject: "hi".into(),
            body: String::new(),
        })
        .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::InvalidInput(_)));
    }

    #[test]
    fn reads_headers_and_plain_text() {
        let message: Message = serde_json::from_value(serde_json::json!({
            "id": "m1", "threadId": "t1",
            "payload": {
                "mimeType": "multipart/alternative",
                "headers": [{ "name": "Subject", "value": "Invoice" }],
                "parts": [
                    { "mimeType": "text/html", "body": { "data": "PGI-aGk8L2I-" } },
                    { "mimeType": "text/plain", "body": { "data": "aGkgdGhlcmU" } }
                ]
            }
        }))
        .unwrap();
        assert_eq!(message.header("subject"), Some("Invoice"));
        assert_eq!(message.plain_text().as_deref(), Some("hi there"));
        assert!(message.label_ids.is_empty());
    }
}
