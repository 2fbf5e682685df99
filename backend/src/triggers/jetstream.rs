//! The cluster's event bus on NATS JetStream.
//!
//! Subjects: `<prefix>.events.<user id>.<event type>` (an event type's dots
//! make more tokens), all captured by one work-queue stream. A message's
//! body is the event's payload (JSON); headers carry the rest:
//! `Roost-Event-Id` (else `Nats-Msg-Id`, else the stream sequence) and
//! `Roost-Source`. So a system other than roost can publish straight to
//! `<prefix>.events.<user>.<type>` and the user's scripts subscribed to that
//! type run, exactly as for `POST /v1/events/<type>`.
//!
//! One durable pull consumer is shared by every node: each message goes to
//! one node, which stores its runs and only then acknowledges it. A node
//! that dies first leaves it unacknowledged; JetStream redelivers it after
//! the ack wait, and the event id makes the second ingestion a no-op.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::event::{EventError, Submitted, ingest, valid_type};
use crate::logging::redact_url;
use crate::queue::Runner;
use crate::store::{NewEvent, Store};

/// Name of the consumer every node shares.
const CONSUMER: &str = "roost-runs";
/// How long a node has to store a message's runs before JetStream gives the
/// message to another node.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// Messages one node ingests at once.
const CONCURRENCY: usize = 32;
/// JetStream drops a repeated `Nats-Msg-Id` within this window; the events
/// table catches repeats after it.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Where the cluster's events live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://host:port`.
    pub url: String,
    /// Stream name.
    pub stream: String,
    /// First subject token.
    pub subject_prefix: String,
}

impl NatsConfig {
    /// The defaults for a server at `url`: stream `ROOST_EVENTS`, subjects
    /// `roost.events.>`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "ROOST_EVENTS".into(),
            subject_prefix: "roost".into(),
        }
    }

    /// Checks the names are usable as a stream name and a subject token.
    pub fn validate(&self) -> Result<(), String> {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        };
        if !token(&self.stream) {
            return Err(format!(
                "NATS stream `{}`: use letters, digits, `_` and `-`",
                self.stream
            ));
        }
        if !token(&self.subject_prefix) {
            return Err(format!(
                "NATS subject prefix `{}`: use letters, digits, `_` and `-`",
                self.subject_prefix
            ));
        }
        Ok(())
    }
}

/// A node's connection to the stream.
pub struct JetStreamBus {
    config: NatsConfig,
    client: async_nats::Client,
    context: jetstream::Context,
    stream: stream::Stream,
}

fn bus_error(err: impl std::fmt::Display) -> EventError {
    EventError::Bus(err.to_string())
}

impl JetStreamBus {
    /// Connects and makes sure the stream exists.
    pub async fn connect(config: NatsConfig) -> Result<Self, EventError> {
        config.validate().map_err(EventError::Bus)?;
        let client = async_nats::ConnectOptions::new()
            .name("roost")
            .connect(config.url.as_str())
            .await
            .map_err(|e| {
                // A NATS URL may carry a user and password.
                EventError::Bus(format!("connecting to {}: {e}", redact_url(&config.url)))
            })?;
        let context = jetstream::new(client.clone());
        let stream = context
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: vec![format!("{}.events.>", config.subject_prefix)],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|e| EventError::Bus(format!("creating stream {}: {e}", config.stream)))?;
        tracing::info!(url = %redact_url(&config.url), stream = %config.stream, subjects = %format!("{}.events.>", config.subject_prefix), "joined the cluster's event stream");
        Ok(Self {
            config,
            client,
            context,
            stream,
        })
    }

    /// The settings this bus was made from.
    pub fn config(&self) -> &NatsConfig {
        &self.config
    }

    /// The subject of `event_type` events of `user_id`.
    pub fn subject(&self, user_id: &str, event_type: &str) -> String {
        format!(
            "{}.events.{user_id}.{event_type}",
            self.config.subject_prefix
        )
    }

    /// Publishes an event and waits for the stream to have stored it.
    pub async fn publish(&self, event: &NewEvent) -> Result<Submitted, EventError> {
        let payload = serde_json::to_vec(&event.payload).map_err(bus_error)?;
        let limit = self.client.server_info().max_payload;
        if payload.len() >= limit {
            return Err(EventError::TooLarge(limit));
        }
        let mut message = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("{}:{}", event.user_id, event.event_id))
            .header("Roost-Event-Id", event.event_id.as_str());
        if let Some(source) = &event.source {
            message = message.header("Roost-Source", source.as_str());
        }
        let ack = self
            .context
            .send_publish(self.subject(&event.user_id, &event.event_type), message)
            .await
            .map_err(bus_error)?
            .await
            .map_err(bus_error)?;
        tracing::info!(event_id = %event.event_id, event_type = %event.event_type, sequence = ack.sequence, duplicate = ack.duplicate, "event published");
        Ok(Submitted::Published {
            duplicate: ack.duplicate,
            sequence: ack.sequence,
        })
    }

    /// Consumes the stream until `stop`: each message becomes runs, then is
    /// acknowledged. Reconnects after errors.
    pub fn start_consumer(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        runner: Arc<Runner>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            while !*stop.borrow() {
                let consumed = tokio::select! {
                    result = bus.consume(&store, &runner) => result,
                    _ = stop.changed() => break,
                };
                if let Err(err) = consumed {
                    tracing::error!(error = %err, "consuming the event stream failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => break,
                    }
                }
            }
        })
    }

    async fn consume(
        &self,
        store: &Arc<dyn Store>,
        runner: &Arc<Runner>,
    ) -> Result<(), EventError> {
        let consumer = self
            .stream
            .get_or_create_consumer(
                CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(CONSUMER.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_deliver: -1,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(bus_error)?;
        let messages = consumer.messages().await.map_err(bus_error)?;
        messages
            .for_each_concurrent(CONCURRENCY, |message| async move {
                match message {
                    Ok(message) => self.handle(store.as_ref(), runner, message).await,
                    Err(err) => tracing::warn!(error = %err, "receiving from the event stream"),
                }
            })
            .await;
        Err(EventError::Bus("the event stream's consumer ended".into()))
    }

    async fn handle(&self, store: &dyn Store, runner: &Runner, message: jetstream::Message) {
        let event = match self.event_of(&message) {
            Ok(event) => event,
            Err(why) => {
                // A message no retry can fix: drop it, loudly.
                tracing::warn!(subject = %message.subject, reason = %why, "dropping an event message");
                let _ = message.ack().await;
                return;
            }
        };
        match store.get_user(&event.user_id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!(subject = %message.subject, "dropping an event for an unknown user");
                let _ = message.ack().await;
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "looking up an event's user failed; redelivering");
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
                return;
            }
        }
        match ingest(store, runner, &event, None).await {
            Ok(_) => {
                if let Err(err) = message.ack().await {
                    // Redelivery will find the event already ingested.
                    tracing::warn!(event_id = %event.event_id, error = %err, "acknowledging an event failed");
                }
            }
            Err(err) => {
                tracing::warn!(event_id = %event.event_id, error = %err, "ingesting an event failed; redelivering");
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
        }
    }

    /// The event a message carries: user and type from the subject, the rest
    /// from headers and body.
    fn event_of(&self, message: &jetstream::Message) -> Result<NewEvent, String> {
        let prefix = format!("{}.events.", self.config.subject_prefix);
        let rest = message
            .subject
            .as_str()
            .strip_prefix(&prefix)
            .ok_or("not an event subject")?;
        let (user_id, event_type) = rest
            .split_once('.')
            .ok_or("the subject names no event type")?;
        if !valid_type(event_type) {
            return Err(format!("`{event_type}` is not a valid event type"));
        }
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
                .filter(|v| !v.is_empty())
        };
        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        let event_id = header("Roost-Event-Id")
            .or_else(|| header("Nats-Msg-Id"))
            .unwrap_or_else(|| format!("nats-{}-{sequence}", self.config.stream));
        if event_id.len() > 200 {
            return Err("the event id is longer than 200 characters".into());
        }
        let payload = if message.payload.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&message.payload).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&message.payload).into_owned())
            })
        };
        Ok(NewEvent {
            user_id: user_id.to_string(),
            event_id,
            event_type: event_type.to_string(),
            source: header("Roost-Source").or_else(|| Some("nats".into())),
            payload,
            source_run_id: None,
            chain_depth: 0,
        })
    }
}
