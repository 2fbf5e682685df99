//! The roost guest SDK: write a script as a few named handlers, build it for
//! `wasm32-wasip2`, and deploy it to roost.
//!
//! ```ignore
//! use roost_sdk::{Invocation, on_event, on_schedule};
//!
//! #[on_schedule("0 */6 * * *")]
//! fn heartbeat() {
//!     println!("still alive");
//! }
//!
//! #[on_event("order.created")]
//! fn on_order(invocation: &Invocation) -> roost_sdk::Result {
//!     let order: serde_json::Value = invocation.payload_as()?;
//!     println!("order {}", order["id"]);
//!     Ok(())
//! }
//!
//! roost_sdk::main!(heartbeat, on_order);
//! ```
//!
//! [`on_http`] makes a handler answer HTTP requests to a URL roost gives
//! the script (see [`http`] under "Answering requests"). [`tool`] offers a
//! handler to AI agents as an MCP tool, its input described by a JSON
//! Schema derived from its argument's type.
//!
//! Each trigger attribute records the handler and its trigger in a custom
//! section of the built component, so roost knows a script's schedules,
//! events, HTTP routes and integrations without running it
//! (`roost inspect script.wasm`).
//! At run time roost writes one [`Invocation`] to the script's stdin and
//! `main!` calls the handler it names.
//!
//! Integrations come as clients that declare themselves: `let gmail =
//! roost_sdk::gmail::init!();` records `gmail` in the component's metadata
//! (so deploy asks the user to connect Gmail before the script can run) and
//! returns a client that reads its token from the run's env on first use.
//! [`gmail`], [`slack`] and [`messaging`] are typed; [`http::init!`] gives a
//! plain client for any other integration roost knows; and
//! [`integrations::call`] runs any method of any declared integration on the
//! host, where roost checks it against the definition's schemas and adds the
//! credential itself (the only way to reach integrations whose credentials
//! are host-only).
//!
//! [`events::emit`] publishes an event that runs the user's `#[on_event]`
//! handlers, and [`runs::schedule`] asks for a run of a handler at a time,
//! both committed with the run's success.
//!
//! [`state`] keeps values between runs, written only when a run succeeds
//! (with cursors for "since the last run": [`state::HighWater`],
//! [`state::SeenSet`]).
//!
//! The attributes and `init!` macros emit `#[unsafe(link_section)]` statics into your crate, so
//! a script crate cannot use `#![forbid(unsafe_code)]`.

#[doc(hidden)]
pub mod __private;
mod error;
pub mod events;
mod exit;
mod flow_checks;
pub mod gmail;
pub mod http;
pub mod integration;
mod integration_error;
pub mod integrations;
mod internal;
mod invocation;
pub mod messaging;
mod refusal;
pub mod runs;
pub mod slack;
pub mod state;
mod tool;

pub use error::{Error, Result};
pub use exit::exit;
pub use integration::{ErrorKind, IntegrationError};
pub use invocation::{Invocation, Trigger};
pub use roost_sdk_macros::{
    handler, main, on_event, on_http, on_schedule, tool, uses_integrations,
};
/// The JSON Schema derive a [`tool`]'s input uses: `use roost_sdk::schemars;`
/// then `#[derive(serde::Deserialize, schemars::JsonSchema)]`.
pub use schemars;

/// Asks roost to put an integration's OAuth refresh token in the run's
/// environment (`GMAIL_REFRESH_TOKEN`, …) as well as its access token:
/// `roost_sdk::wants_refresh_token!("gmail");` at the top level of the
/// script. roost refreshes tokens on the host, so a script needs this only
/// to hand the token to something else; it is long-lived, and deploy says
/// that the script gets it.
#[macro_export]
macro_rules! wants_refresh_token {
    ($integration:literal) => {
        $crate::__declare_integration!($integration);
        $crate::__declare_refresh_token!($integration);
    };
}

/// What starts a handler, as declared by its attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerDef {
    /// `#[handler]`: only manual runs.
    Manual,
    /// `#[on_schedule(cron, tz = …)]`.
    Schedule {
        /// The cron expression.
        cron: &'static str,
        /// IANA timezone the expression is read in (UTC when absent).
        timezone: Option<&'static str>,
    },
    /// `#[on_event(name)]`.
    Event {
        /// Event type.
        name: &'static str,
    },
    /// `#[on_http(method, path, …)]`.
    Http {
        /// Method, upper case.
        method: &'static str,
        /// Path, starting with `/`.
        path: &'static str,
        /// Who may call.
        access: http::Access,
        /// How long the caller waits, in ms (the server's default when
        /// absent).
        deadline_ms: Option<u64>,
        /// What the caller gets when the deadline passes.
        on_deadline: http::OnDeadline,
    },
    /// `#[tool(description = …)]`.
    Tool {
        /// What the tool does.
        description: &'static str,
    },
}

/// A handler as registered by its trigger attribute; `main!` dispatches
/// over a list of these.
#[derive(Debug, Clone, Copy)]
pub struct HandlerDef {
    /// Function name.
    pub name: &'static str,
    /// Declared trigger.
    pub trigger: TriggerDef,
    /// Calls the function.
    pub run: fn(&Invocation) -> Result,
    /// For a tool, the JSON Schema of its input.
    pub describe: Option<fn() -> serde_json::Value>,
}
