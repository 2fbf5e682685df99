use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What caused a run. Delivered to the guest inside the invocation envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// Started by a person or an API call.
    Manual,
    /// A cron tick of the named schedule expression.
    Schedule {
        /// The cron expression that fired.
        cron: String,
        /// IANA timezone the expression is read in (UTC when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    /// An event of the given type.
    Event {
        /// Event type, such as `order.created`.
        name: String,
    },
    /// An HTTP request to the handler's URL on the server.
    Http(HttpTrigger),
    /// A tool an agent calls over the Model Context Protocol.
    Mcp(ToolTrigger),
}

/// A handler offered to agents as an MCP tool: what it does and what it
/// takes. Delivered to the guest without the schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolTrigger {
    /// What the tool does, for the agent choosing it.
    #[serde(default)]
    pub description: String,
    /// The JSON Schema of its arguments (an object). The component
    /// describes it when deploy asks (see the SDK's `#[tool]`); metadata
    /// declared by hand may give it directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<serde_json::Value>,
}

/// The handler name that asks an SDK-built component to describe its tools
/// instead of running a handler: a name no Rust function can have.
pub const DESCRIBE_HANDLER: &str = "roost:describe";

/// What an HTTP-triggered handler answers: a method and path, who may call
/// it, and how long its caller waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpTrigger {
    /// Method, upper case (`POST`).
    pub method: String,
    /// Path below the handler's URL, starting with `/`.
    pub path: String,
    /// Who may call it.
    #[serde(default)]
    pub access: HttpAccess,
    /// How long the caller waits for the response, in ms (the server's
    /// default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// What the caller gets when the deadline passes.
    #[serde(default)]
    pub on_deadline: OnDeadline,
}

/// Who may call an HTTP-triggered handler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpAccess {
    /// Anyone who knows the URL; its path has an unguessable segment.
    #[default]
    Public,
    /// A caller with a roost API token of the script's owner.
    Bearer,
    /// A caller that signs each request with the secret its owner set.
    Hmac,
}

/// What a caller gets when the handler's deadline passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDeadline {
    /// 202 with the run's id; the run goes on.
    #[default]
    Accept,
    /// 504; the run goes on.
    Fail,
}

/// One run of a guest: what it sees of the world.
///
/// The guest's environment is exactly `env`; nothing is inherited from the
/// host. The handler name, trigger and payload reach the guest as one JSON
/// envelope on stdin (see [`Invocation::envelope`]) and the handler name also
/// as `argv[1]`, so scripts that do not use the SDK can still dispatch.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// Environment variables, exactly as the guest will see them.
    pub env: BTreeMap<String, String>,
    /// Handler to run; `None` lets a single-handler script run its handler.
    pub handler: Option<String>,
    /// Why the run happens.
    pub trigger: Option<Trigger>,
    /// The event payload or manual-run input.
    pub payload: serde_json::Value,
    /// Program name given to the guest as `argv[0]`.
    pub program_name: Option<String>,
    /// Where the caller watches the run's output while it runs, if it does.
    pub output_probe: Option<crate::OutputProbe>,
}

/// The JSON document written to the guest's stdin. The SDK's
/// `Invocation::read` parses exactly this shape.
#[derive(Debug, Serialize)]
struct Envelope<'a> {
    handler: Option<&'a str>,
    trigger: &'a Trigger,
    payload: &'a serde_json::Value,
}

impl Invocation {
    /// The stdin bytes the guest receives.
    pub fn envelope(&self) -> Vec<u8> {
        let envelope = Envelope {
            handler: self.handler.as_deref(),
            trigger: self.trigger.as_ref().unwrap_or(&Trigger::Manual),
            payload: &self.payload,
        };
        serde_json::to_vec(&envelope).expect("an invocation envelope always serialises")
    }

    pub(crate) fn argv(&self) -> Vec<String> {
        let mut argv = vec![self.program_name.clone().unwrap_or_else(|| "script".into())];
        argv.extend(self.handler.clone());
        argv
    }
}
