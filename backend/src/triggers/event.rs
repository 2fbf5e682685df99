//! Events in, runs out. An event (from `POST /v1/events/{type}`, a Slack
//! webhook, or — on a cluster — any system publishing to NATS) becomes one
//! queued run per subscribed handler of its user's scripts, exactly once
//! per event id.
//!
//! A single node turns events into runs directly, in one database
//! transaction. A cluster node publishes them to a JetStream stream instead
//! ([`jetstream`]); a durable consumer shared by every node turns each
//! message into runs and acknowledges it only once they are stored, so an
//! event survives the node that received it, and a redelivered message is
//! recognised by its event id.

use std::sync::Arc;

use crate::queue::Runner;
use crate::store::{EventRow, NewEvent, QueueLimits, Store, StoreError};

use super::jetstream::JetStreamBus;

/// What became of a submitted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Turned into runs here and now.
    Ingested {
        /// The event id had been seen before; nothing new was queued.
        duplicate: bool,
        /// The runs it caused.
        run_ids: Vec<String>,
    },
    /// Stored in the cluster's stream; runs follow as soon as a node's
    /// consumer takes it (`GET /v1/events/{id}` shows them).
    Published {
        /// JetStream recognised the event id within its duplicate window.
        duplicate: bool,
        /// Position in the stream.
        sequence: u64,
    },
}

/// Why an event was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Storing the event or its runs failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event bus did not take the event.
    #[error("the event bus is unavailable: {0}")]
    Bus(String),
    /// The payload is larger than the bus carries.
    #[error("the event payload must be smaller than {0} bytes on this cluster")]
    TooLarge(usize),
}

/// Where events go: straight into the store, or onto the cluster's stream.
#[derive(Clone)]
pub struct EventService {
    store: Arc<dyn Store>,
    runner: Arc<Runner>,
    bus: Option<Arc<JetStreamBus>>,
}

impl EventService {
    /// Events into `store` directly, or through `bus` when there is one.
    pub fn new(store: Arc<dyn Store>, runner: Arc<Runner>, bus: Option<Arc<JetStreamBus>>) -> Self {
        Self { store, runner, bus }
    }

    /// The bus, if this node is part of a cluster.
    pub fn bus(&self) -> Option<&Arc<JetStreamBus>> {
        self.bus.as_ref()
    }

    /// One of the user's received events (while within the idempotency
    /// window, and once turned into runs).
    pub async fn get(&self, user_id: &str, event_id: &str) -> Result<Option<EventRow>, StoreError> {
        self.store.get_event(user_id, event_id).await
    }

    /// Accepts one event; with `limits`, only while the user's queue has
    /// room ([`StoreError::QueueFull`] and [`StoreError::PayloadQuotaFull`]
    /// otherwise).
    pub async fn submit(
        &self,
        event: &NewEvent,
        limits: Option<QueueLimits>,
    ) -> Result<Submitted, EventError> {
        match &self.bus {
            Some(bus) => {
                // The runs are made later, by whichever node consumes the
                // event: the caps are checked here, against the queue now,
                // counting the payload once.
                if let Some(limits) = limits {
                    let incoming = event.payload.to_string().len() as i64;
                    crate::store::check_queue_room(
                        self.store.as_ref(),
                        &event.user_id,
                        limits,
                        incoming,
                    )
                    .await?;
                }
                bus.publish(event).await
            }
            None => {
                let outcome = ingest(self.store.as_ref(), &self.runner, event, limits).await?;
                Ok(Submitted::Ingested {
                    duplicate: outcome.duplicate,
                    run_ids: outcome.run_ids,
                })
            }
        }
    }
}

/// Turns one event into runs (once per event id) and wakes this node's
/// workers when there are new ones.
pub(crate) async fn ingest(
    store: &dyn Store,
    runner: &Runner,
    event: &NewEvent,
    limits: Option<QueueLimits>,
) -> Result<crate::store::EventIngest, StoreError> {
    let outcome = match limits {
        Some(limits) => store.ingest_event_within(event, limits).await?,
        None => store.ingest_event(event).await?,
    };
    runner.metrics().events_ingested.inc();
    if !outcome.duplicate && !outcome.run_ids.is_empty() {
        for run_id in &outcome.run_ids {
            let span = crate::telemetry::span(
                || tracing::info_span!(target: crate::telemetry::TARGET, "roost.trigger", roost.trigger = "event", roost.event_type = %event.event_type),
            );
            crate::telemetry::bind(&span, run_id);
        }
        runner.wake_for(outcome.run_ids.len());
    }
    tracing::info!(
        event_id = %event.event_id,
        event_type = %event.event_type,
        runs = outcome.run_ids.len(),
        duplicate = outcome.duplicate,
        "event ingested"
    );
    Ok(outcome)
}

/// Event types: 1-128 of `[A-Za-z0-9._:-]`, dot-separated segments none of
/// them empty (each segment is a NATS subject token on a cluster).
pub fn valid_type(event_type: &str) -> bool {
    !event_type.is_empty()
        && event_type.len() <= 128
        && event_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
        && event_type.split('.').all(|segment| !segment.is_empty())
}

#[cfg(test)]
mod tests {
    use super::valid_type;

    #[test]
    fn event_types() {
        for good in ["order.created", "shopify.orders.create", "a", "x:y-z_1"] {
            assert!(valid_type(good), "{good}");
        }
        for bad in ["", ".x", "x.", "a..b", "a b", "a*", "a>", &"x".repeat(129)] {
            assert!(!valid_type(bad), "{bad}");
        }
    }
}
