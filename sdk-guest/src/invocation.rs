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
    /// An HTTP request to an [`on_http`](crate::on_http) handler; the
    /// request itself is the payload (read it with
    /// [`Request::from_invocation`](crate::http::Request::from_invocation)).
    Http {
        /// Declared method.
        method: String,
        /// Declared path.
        path: String,
        /// Who may call.
        #[serde(default)]
        access: crate::http::Access,
        /// How long the caller waits, in ms, when declared.
        #[serde(default)]
        deadline_ms: Option<u64>,
        /// What the caller gets when the deadline passes.
        #[serde(default)]
        on_deadline: crate::http::OnDeadline,
    },
    /// An agent's call of a [`tool`](crate::tool) over MCP; the arguments
    /// are the payload.
    Mcp {},
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

#[cfg(test)]
mod tests {
    use super::{Invocation, Trigger};
    use crate::http::{Access, OnDeadline, Request};

    #[test]
    fn reads_an_http_envelope() {
        let envelope = br#"{"handler":"echo","trigger":{"kind":"http","method":"POST","path":"/echo","access":"bearer","deadline_ms":300,"on_deadline":"fail"},"payload":{"method":"POST","path":"/echo","query":"","headers":[["x-foo","bar"]],"body_base64":"aGk="}}"#;
        let invocation = Invocation::parse(envelope).unwrap();
        assert_eq!(
            invocation.trigger,
            Trigger::Http {
                method: "POST".into(),
                path: "/echo".into(),
                access: Access::Bearer,
                deadline_ms: Some(300),
                on_deadline: OnDeadline::Fail,
            }
        );
        let request = Request::from_invocation(&invocation).unwrap();
        assert_eq!(request.text(), "hi");
        let minimal = br#"{"handler":"h","trigger":{"kind":"http","method":"GET","path":"/"}}"#;
        let Trigger::Http {
            access,
            deadline_ms,
            on_deadline,
            ..
        } = Invocation::parse(minimal).unwrap().trigger
        else {
            panic!("not an HTTP trigger");
        };
        assert_eq!(
            (access, deadline_ms, on_deadline),
            (Access::Public, None, OnDeadline::Accept)
        );
    }
}
