use std::io::Read;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// Why this run happens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// Started by hand.
    Manual,
    /// A cron tick.
    Schedule {
        /// The expression that fired.
        cron: String,
        /// Its timezone, when one was declared.
        #[serde(default)]
        timezone: Option<String>,
    },
    /// An event.
    Event {
        /// Event type, such as `order.created`.
        name: String,
    },
}

/// The current run as roost describes it on stdin.
#[derive(Debug, Clone, Deserialize)]
pub struct Invocation {
    /// The handler roost asked for; `None` when the caller left the choice
    /// to a single-handler script.
    #[serde(default)]
    pub handler: Option<String>,
    /// What started the run.
    pub trigger: Trigger,
    /// Event payload or manual input; `null` when there is none.
    #[serde(default)]
    pub payload: serde_json::Value,
}

impl Invocation {
    /// Reads the invocation envelope roost writes to stdin. An empty stdin
    /// (a script run outside roost) is a manual run with no payload.
    pub fn read() -> Result<Self, Error> {
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input)?;
        Self::parse(&input)
    }

    /// Parses an envelope.
    pub fn parse(input: &[u8]) -> Result<Self, Error> {
        if input.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self {
                handler: None,
                trigger: Trigger::Manual,
                payload: serde_json::Value::Null,
            });
        }
        serde_json::from_slice(input).map_err(|err| {
            Error::msg(format!(
                "roost sent an invocation this SDK cannot read: {err}"
            ))
        })
    }

    /// The payload decoded into your own type.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(&self.payload).map_err(|err| {
            Error::msg(format!(
                "the payload does not have the expected shape: {err}"
            ))
        })
    }
}
