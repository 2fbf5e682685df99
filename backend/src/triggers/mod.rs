//! Triggers turn what happens into queued runs, each through the run
//! queue (`crate::queue`): a user asking (manual), a schedule's tick, an
//! event (posted, from a webhook, or from a cluster's stream), a webhook
//! delivery from an integration, a request to an HTTP handler's URL, an
//! agent's call of a tool.

pub mod event;
pub mod flow_control;
pub mod http;
pub mod jetstream;
pub mod manual;
pub mod replay;
pub mod schedule;
pub mod signing;
mod ticks;
pub mod tool;
pub mod webhook;

pub use event::{EventError, EventService, Submitted, valid_type};
pub use jetstream::{JetStreamBus, NatsConfig};
pub use manual::{ManualRequest, ManualRunError, ManualRuns};
pub use replay::{ReplayError, ReplayRequest, Replays};
pub use webhook::{WebhookAnswer, WebhookError, WebhookUrl, Webhooks};
