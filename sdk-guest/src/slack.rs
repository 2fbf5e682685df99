//! Slack: post messages, reply in threads and list channels as the installed
//! app's bot.
//!
//! ```ignore
//! let slack = roost_sdk::slack::init!();
//! let posted = slack.post_message(&PostMessage::new("#ops", "deploy finished"))?;
//! slack.reply_in_thread(&ReplyInThread::new(&posted.channel.unwrap(), &posted.ts.unwrap(), "details…"))?;
//! ```
//!
//! Slack answers HTTP 200 with `ok: false` on failures; the client turns
//! those into [`ErrorKind::Api`] with Slack's error code
//! (`channel_not_found`, `not_in_channel`…), so a returned value is always a
//! success. `init!()` declares `slack`; the token (`SLACK_ACCESS_TOKEN`) is
//! read on first use.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::http::Query;
use crate::integration::{Defaults, ErrorKind, IntegrationError, LazyConnection};

/// Declares `slack` and returns a [`Slack`] client.
#[doc(inline)]
pub use crate::__slack_init as init;

#[doc(hidden)]
#[macro_export]
macro_rules! __slack_init {
    () => {{
        $crate::__declare_integration!("slack");
        $crate::slack::Slack::new()
    }};
}

const DEFAULTS: Defaults = Defaults {
    integration: "slack",
    base_url: Some("https://slack.com"),
    bearer_env: Some("SLACK_ACCESS_TOKEN"),
};

/// A Slack client for the connected workspace. Build it with [`init!`].
#[derive(Debug)]
pub struct Slack {
    connection: LazyConnection,
}

/// Input of [`Slack::post_message`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PostMessage {
    /// Channel id (`C0123456789`) or name.
    pub channel: String,
    /// Message text (Slack mrkdwn).
    pub text: String,
    /// Post as a reply in this message's thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
}

impl PostMessage {
    /// `text` to `channel`.
    pub fn new(channel: &str, text: &str) -> Self {
        Self {
            channel: channel.to_string(),
            text: text.to_string(),
            thread_ts: None,
        }
    }
}

/// Input of [`Slack::reply_in_thread`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReplyInThread {
    /// Channel holding the parent message.
    pub channel: String,
    /// `ts` of the parent message.
    pub thread_ts: String,
    /// Reply text.
    pub text: String,
    /// Also show the reply in the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_broadcast: Option<bool>,
}

impl ReplyInThread {
    /// `text` in reply to `thread_ts` in `channel`.
    pub fn new(channel: &str, thread_ts: &str, text: &str) -> Self {
        Self {
            channel: channel.to_string(),
            thread_ts: thread_ts.to_string(),
            text: text.to_string(),
            reply_broadcast: None,
        }
    }
}

/// A posted message, as Slack answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PostedMessage {
    /// Always true on a value the client returns.
    pub ok: bool,
    /// Slack's error code (only on failures, which become errors).
    #[serde(default)]
    pub error: Option<String>,
    /// Channel id the message went to.
    #[serde(default)]
    pub channel: Option<String>,
    /// Timestamp of the new message: its id in the channel.
    #[serde(default)]
    pub ts: Option<String>,
    /// The message as Slack stored it.
    #[serde(default)]
    pub message: Option<SlackMessage>,
}

/// A message as Slack stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SlackMessage {
    /// Always `message`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Posting user, if any.
    #[serde(default)]
    pub user: Option<String>,
    /// Posting bot, if any.
    #[serde(default)]
    pub bot_id: Option<String>,
    /// Text.
    #[serde(default)]
    pub text: Option<String>,
    /// Its timestamp.
    #[serde(default)]
    pub ts: Option<String>,
    /// Parent timestamp, in a thread.
    #[serde(default)]
    pub thread_ts: Option<String>,
}

/// Input of [`Slack::list_channels`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ListChannels {
    /// Comma-separated conversation types (Slack's default: `public_channel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<String>,
    /// Leave out archived channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_archived: Option<bool>,
    /// Channels per page (1 to 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A page of channels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChannelList {
    /// Always true on a value the client returns.
    pub ok: bool,
    /// Slack's error code (only on failures, which become errors).
    #[serde(default)]
    pub error: Option<String>,
    /// The channels.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Pagination.
    #[serde(default)]
    pub response_metadata: Option<ResponseMetadata>,
}

impl ChannelList {
    /// The cursor of the next page; `None` on the last (Slack sends "").
    pub fn next_cursor(&self) -> Option<&str> {
        self.response_metadata
            .as_ref()
            .and_then(|m| m.next_cursor.as_deref())
            .filter(|c| !c.is_empty())
    }
}

/// Slack's pagination block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResponseMetadata {
    /// Cursor for the next page; empty on the last.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// A channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Channel {
    /// Channel id.
    pub id: String,
    /// Name without `#`.
    pub name: String,
    /// True for a channel.
    #[serde(default)]
    pub is_channel: Option<bool>,
    /// True when private.
    #[serde(default)]
    pub is_private: Option<bool>,
    /// True when archived.
    #[serde(default)]
    pub is_archived: Option<bool>,
    /// True when the bot is a member (it must be, to post).
    #[serde(default)]
    pub is_member: Option<bool>,
    /// Member count.
    #[serde(default)]
    pub num_members: Option<i64>,
    /// Creation time, Unix seconds.
    #[serde(default)]
    pub created: Option<i64>,
    /// Topic.
    #[serde(default)]
    pub topic: Option<TextValue>,
    /// Purpose.
    #[serde(default)]
    pub purpose: Option<TextValue>,
}

/// A channel's topic or purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TextValue {
    /// The text.
    #[serde(default)]
    pub value: Option<String>,
}

impl Slack {
    /// A client that connects on first use. Prefer [`init!`], which also
    /// declares the integration; this alone does not.
    pub const fn new() -> Self {
        Self {
            connection: LazyConnection::new(DEFAULTS),
        }
    }

    /// Posts a message (`post_message`, Slack's `chat.postMessage`).
    pub fn post_message(&self, input: &PostMessage) -> Result<PostedMessage, IntegrationError> {
        if self.connection.host_only() {
            return self.connection.on_host().call("post_message", input);
        }
        self.post("/api/chat.postMessage", input)
    }

    /// Replies in a thread (`reply_in_thread`, `chat.postMessage` with
    /// `thread_ts`).
    pub fn reply_in_thread(
        &self,
        input: &ReplyInThread,
    ) -> Result<PostedMessage, IntegrationError> {
        if self.connection.host_only() {
            return self.connection.on_host().call("reply_in_thread", input);
        }
        self.post("/api/chat.postMessage", input)
    }

    /// Lists channels (`list_channels`, `conversations.list`).
    pub fn list_channels(&self, input: &ListChannels) -> Result<ChannelList, IntegrationError> {
        if self.connection.host_only() {
            return self.connection.on_host().call("list_channels", input);
        }
        let query = Query::new()
            .push_opt("types", input.types.as_deref())
            .push_opt("exclude_archived", input.exclude_archived)
            .push_opt("limit", input.limit)
            .push_opt("cursor", input.cursor.as_deref());
        let answer: serde_json::Value = self.connection.get()?.call(
            "GET",
            &query.to_path("/api/conversations.list"),
            None::<&()>,
        )?;
        self.accept(answer)
    }

    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        input: &impl Serialize,
    ) -> Result<T, IntegrationError> {
        let answer: serde_json::Value = self.connection.get()?.call("POST", path, Some(input))?;
        self.accept(answer)
    }

    /// Slack's envelope: `ok: false` is an error whatever the HTTP status.
    fn accept<T: DeserializeOwned>(
        &self,
        answer: serde_json::Value,
    ) -> Result<T, IntegrationError> {
        let integration = self.connection.integration();
        if answer["ok"] != serde_json::Value::Bool(true) {
            let code = answer["error"]
                .as_str()
                .unwrap_or("unknown_error")
                .to_string();
            return Err(IntegrationError::new(
                integration,
                ErrorKind::Api {
                    status: 200,
                    message: slack_hint(&code).to_string(),
                    code: Some(code),
                },
            ));
        }
        serde_json::from_value(answer)
            .map_err(|e| IntegrationError::new(integration, ErrorKind::Decode(e.to_string())))
    }
}

impl Default for Slack {
    fn default() -> Self {
        Self::new()
    }
}

/// What to do about Slack's most common error codes.
fn slack_hint(code: &str) -> &'static str {
    match code {
        "channel_not_found" => "no such channel, or the bot cannot see it",
        "not_in_channel" => "invite the app's bot to the channel first",
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" => {
            "the token was refused; reconnect slack"
        }
        "missing_scope" => "the app lacks a scope this call needs; reconnect slack",
        "ratelimited" => "rate limited; try again later",
        _ => "Slack refused the call",
    }
}

/// The SDK's methods with the schemas of their types, to compare with the
/// `slack` definition.
#[cfg(feature = "schema")]
pub fn method_schemas() -> Vec<crate::integration::MethodSchema> {
    use crate::integration::MethodSchema;
    vec![
        MethodSchema::of::<PostMessage, PostedMessage>("post_message"),
        MethodSchema::of::<ListChannels, ChannelList>("list_channels"),
        MethodSchema::of::<ReplyInThread, PostedMessage>("reply_in_thread"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_false_is_a_typed_error_with_slacks_code() {
        let err = Slack::new()
            .accept::<PostedMessage>(serde_json::json!({ "ok": false, "error": "not_in_channel" }))
            .unwrap_err();
        match err.kind() {
            ErrorKind::Api { code, .. } => assert_eq!(code.as_deref(), Some("not_in_channel")),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("invite the app's bot"));
        let posted: PostedMessage = Slack::new()
            .accept(serde_json::json!({ "ok": true, "channel": "C1", "ts": "1.2" }))
            .unwrap();
        assert_eq!(posted.ts.as_deref(), Some("1.2"));
    }

    #[test]
    fn last_page_has_no_cursor() {
        let page: ChannelList = serde_json::from_value(
            serde_json::json!({ "ok": true, "channels": [], "response_metadata": { "next_cursor": "" } }),
        )
        .unwrap();
        assert_eq!(page.next_cursor(), None);
    }
}
