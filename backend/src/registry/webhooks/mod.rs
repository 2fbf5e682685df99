//! The `webhooks` section of an integration definition: how a provider
//! signs its deliveries, where the secret comes from, and where the event
//! type, the delivery id and the account are found. One shape covers
//! Slack, Shopify, GitHub and Stripe; a new provider is a JSON file whose
//! test vectors prove the scheme before roost accepts it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use subscriptions::{EachDef, SubscriptionCall, SubscriptionsDef, render};

mod checks;
mod deliveries;
mod subscriptions;
#[cfg(test)]
mod tests;

/// How deliveries of one integration are verified and read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookDef {
    /// The signature and how to check it.
    pub signature: SignatureDef,
    /// Where the signing secret comes from.
    pub secret: SecretSource,
    /// Where the provider's event type is, and how it becomes roost's.
    pub event_type: EventTypeDef,
    /// Where the delivery's id is (the idempotency key).
    pub delivery_id: ValueSource,
    /// JSON Pointer of the event's payload in the body (whole body if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Where the delivery names the provider account it comes from; required
    /// when the secret is the server's, shared by every user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountDef>,
    /// A URL check the provider sends before any event (Slack's
    /// `url_verification`), answered with `{"challenge": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<ChallengeDef>,
    /// Deliveries with known answers: checked whenever the definition loads.
    pub test_vectors: Vec<TestVector>,
    /// How roost registers the deliveries a user's scripts need, where the
    /// provider has an API for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<SubscriptionsDef>,
}

/// HMAC-SHA256 over a template of the timestamp and the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignatureDef {
    /// `hmac-sha256`, the one algorithm these providers use.
    pub algorithm: Algorithm,
    /// Header carrying the signature.
    pub header: String,
    /// How the header is laid out.
    #[serde(default)]
    pub format: HeaderFormat,
    /// Text before the signature in a `plain` header (`sha256=`, `v0=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// In a `keyValue` header (`t=…,v1=…`): the key of the timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_key: Option<String>,
    /// In a `keyValue` header: the key of the signatures (several may come).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_key: Option<String>,
    /// Header carrying the timestamp, for a `plain` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// What is signed: `{body}`, `{timestamp}.{body}`, `v0:{timestamp}:{body}`.
    pub signed: String,
    /// `hex` or `base64`.
    pub encoding: Encoding,
    /// How far the timestamp (Unix seconds) may be from now.
    #[serde(default = "default_tolerance")]
    pub tolerance_seconds: u64,
}

fn default_tolerance() -> u64 {
    300
}

/// The MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// HMAC with SHA-256.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
}

/// How a signature header is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HeaderFormat {
    /// The signature alone, after an optional prefix.
    #[default]
    Plain,
    /// Comma-separated `key=value` pairs (Stripe's `t=…,v1=…`).
    KeyValue,
}

/// How the signature is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Lower- or upper-case hex.
    Hex,
    /// Standard base64.
    Base64,
}

/// Where a signing secret comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "from", deny_unknown_fields)]
pub enum SecretSource {
    /// One of the user's stored credentials of this integration.
    Credential {
        /// Its key.
        key: String,
    },
    /// roost's own app secret, set by the operator
    /// (`ROOST_WEBHOOK_SECRET_<ID>`), the same for every user.
    Server,
}

/// A value of the delivery: a header, or a field of the JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum ValueSource {
    /// A request header.
    Header(String),
    /// A JSON Pointer into the body.
    Field(String),
}

/// The event type a delivery becomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTypeDef {
    /// Where the provider's type is (`X-Shopify-Topic`, `/type`).
    pub from: ValueSource,
    /// Provider types renamed outright; others have `/` turned into `.`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map: BTreeMap<String, String>,
}

/// Where a delivery names its provider account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountDef {
    /// The account (Slack's workspace `team_id`).
    pub id: ValueSource,
    /// The provider app, where the account binding records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<ValueSource>,
}

/// A URL check: when `field` equals `equals`, answer with `answer`'s value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChallengeDef {
    /// JSON Pointer of the request kind.
    pub field: String,
    /// The kind that is a URL check.
    pub equals: String,
    /// JSON Pointer of the value to send back.
    pub answer: String,
}

/// A delivery with a known answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestVector {
    /// What it shows (`the provider's documented example`).
    pub name: String,
    /// The signing secret.
    pub secret: String,
    /// Request headers.
    pub headers: BTreeMap<String, String>,
    /// The raw body.
    pub body: String,
    /// The time of receipt, Unix seconds.
    pub now: i64,
    /// Whether the signature must verify.
    pub valid: bool,
    /// For a valid vector: the roost event type it becomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// For a valid vector: its delivery id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
}

/// Why a delivery's signature did not verify.
pub type Refusal = &'static str;

/// Why a verified delivery cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The body is not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// The event type is missing or does not become a valid roost type.
    #[error("the delivery has no event type roost can use (1-128 of A-Z a-z 0-9 . _ : -)")]
    EventType,
    /// The delivery id is missing or unusable.
    #[error("the delivery has no id (`{0}`) of 1 to 150 printable characters")]
    DeliveryId(String),
}

/// What a verified delivery holds, read with a [`WebhookDef`].
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// A URL check, with the value to send back.
    Challenge(Value),
    /// An event.
    Event {
        /// roost's event type (`shopify.orders.create`).
        event_type: String,
        /// The provider's delivery id.
        delivery_id: String,
        /// The provider account it names, and app, when the definition says where.
        account: Option<(String, Option<String>)>,
        /// The event's payload.
        payload: Value,
    },
}

/// Request headers, looked up case-insensitively.
pub trait Headers: Sync {
    /// The value of `name`, if present and text.
    fn header(&self, name: &str) -> Option<&str>;
}

impl Headers for axum::http::HeaderMap {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Headers for BTreeMap<String, String> {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

impl std::fmt::Display for ValueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueSource::Header(name) => write!(f, "header {name}"),
            ValueSource::Field(pointer) => write!(f, "body field {pointer}"),
        }
    }
}
