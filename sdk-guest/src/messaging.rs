//! roost's own outbox: a script leaves a message for its user without any
//! third party. roost stores it with the run that sent it and lists it at
//! `GET /v1/messages` (and `roost messages`).
//!
//! ```ignore
//! let outbox = roost_sdk::messaging::init!();
//! outbox.send_message(&SendMessage::text("backup finished"))?;
//! ```
//!
//! The request goes to roost itself (`http://roost.internal`), which answers
//! from the host: it never reaches a network.

use serde::{Deserialize, Serialize};

use crate::integration::{Defaults, ErrorKind, IntegrationError, LazyConnection};

/// Declares `messaging` and returns an [`Outbox`].
#[doc(inline)]
pub use crate::__messaging_init as init;

#[doc(hidden)]
#[macro_export]
macro_rules! __messaging_init {
    () => {{
        $crate::__declare_integration!("messaging");
        $crate::messaging::Outbox::new()
    }};
}

const DEFAULTS: Defaults = Defaults {
    integration: "messaging",
    base_url: Some("http://roost.internal"),
    bearer_env: None,
};

/// The user's roost outbox. Build it with [`init!`].
#[derive(Debug)]
pub struct Outbox {
    connection: LazyConnection,
}

/// Input of [`Outbox::send_message`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SendMessage {
    /// A free-form channel or category (`alerts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// A recipient label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Subject line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The message (not empty).
    pub body: String,
}

impl SendMessage {
    /// A message with only a body.
    pub fn text(body: &str) -> Self {
        Self {
            body: body.to_string(),
            ..Self::default()
        }
    }
}

/// The stored message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StoredMessage {
    /// Its id in the outbox.
    pub id: String,
}

impl Outbox {
    /// An outbox client. Prefer [`init!`], which also declares the
    /// integration; without the declaration roost refuses the message.
    pub const fn new() -> Self {
        Self {
            connection: LazyConnection::new(DEFAULTS),
        }
    }

    /// Stores a message in the outbox (`send_message`).
    pub fn send_message(&self, input: &SendMessage) -> Result<StoredMessage, IntegrationError> {
        if input.body.is_empty() {
            return Err(IntegrationError::new(
                self.connection.integration(),
                ErrorKind::InvalidInput("`body` is empty".into()),
            ));
        }
        self.connection
            .get()?
            .call("POST", "/v1/messages", Some(input))
    }
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

/// The SDK's methods with the schemas of their types, to compare with the
/// `messaging` definition.
#[cfg(feature = "schema")]
pub fn method_schemas() -> Vec<crate::integration::MethodSchema> {
    vec![crate::integration::MethodSchema::of::<
        SendMessage,
        StoredMessage,
    >("send_message")]
}
