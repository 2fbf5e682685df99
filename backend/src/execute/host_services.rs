//! roost's side of `http://roost.internal` for one run: services a script
//! calls on the host, without a network, a token or the server's address.
//! The service is built per run, so it knows whose run it serves from the
//! run itself, never from what the guest sends.
//!
//! - `POST /v1/messages`: the `messaging` outbox. Messages are kept with
//!   the run and written with its outcome (see `RunEffects`), so a run
//!   executed twice after a crash leaves them once.
//! - `POST /v1/integrations/{id}/{method}`: a host-mediated integration
//!   call (`integrations::call` in the SDK), executed by the connectors
//!   with the user's credential added on the host (see `host_calls.rs`).
//! - `POST /v1/credentials/{id}/refused`: the provider answered the
//!   script's own call with 401 (see `refusals.rs`).
//! - `POST /v1/state/{operation}`: the script's state (`roost_sdk::state`),
//!   written with the run's outcome like the outbox (see `run_state.rs`).
//! - `POST /v1/http/response`: an HTTP-triggered run's answer to its
//!   caller, recorded with its success (see `http_reply.rs`).
//! - `POST /v1/tool/result`: an MCP tool call's result, recorded the same
//!   way.
//! - `POST /v1/events/emit`: an event the script emits, committed with the
//!   run's success (see `emitted_events.rs`); `POST /v1/runs/schedule`: a
//!   run it asks for at a time, likewise (see `scheduled_runs.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use roost_sandbox::{HostFuture, HostRequest, HostResponse, HostService};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument as _;

use super::emitted_events::{EmitLimits, EmittedEvents};
use super::http_reply::{Caller, HttpReplySlot};
use super::masking::Masker;
use super::refusals::GivenCredentials;
use super::run_state::{CommittedState, RunState};
use super::scheduled_runs::ScheduledRuns;
use crate::connectors::{Connectors, CredentialSource};
use crate::store::{
    MessageRow, RunEffects, RunRow, StateEntry, StateQuota, Store, new_id, now_millis,
};

/// Most messages one run may leave.
pub const MAX_MESSAGES_PER_RUN: u32 = 100;
/// Largest message body, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest channel, recipient or subject, in characters.
const MAX_LABEL_CHARS: usize = 256;

/// The host services of one run.
pub(crate) struct RunServices {
    inner: Arc<Inner>,
}

/// What every run's services share: storage, the connectors and where
/// credentials come from.
#[derive(Clone)]
pub(crate) struct ServiceDeps {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) connectors: Arc<Connectors>,
    pub(crate) credentials: Arc<dyn CredentialSource>,
    /// The most state one script may keep.
    pub(crate) state_quota: StateQuota,
    /// What bounds the events a run emits.
    pub(crate) emit_limits: EmitLimits,
}

pub(super) struct Inner {
    pub(super) deps: ServiceDeps,
    pub(super) user_id: String,
    script_id: String,
    pub(super) run_id: String,
    pub(super) integrations: Vec<String>,
    messages_sent: AtomicU32,
    /// Outbox messages accepted so far, written with the run's end.
    messages: std::sync::Mutex<Vec<MessageRow>>,
    pub(super) calls_made: AtomicU32,
    /// Integrations whose credential this run's host calls have used
    /// (audited once per run and integration).
    pub(super) audited: std::sync::Mutex<std::collections::BTreeSet<String>>,
    pub(super) masker: Masker,
    /// The credentials the run was given in its env.
    pub(super) given: GivenCredentials,
    /// Hosts that answered the run's own requests with 401.
    pub(super) refused_hosts: std::sync::Mutex<Vec<(String, u16)>>,
    /// Integrations whose refusal this run has reported.
    pub(super) reported: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// What the run's error should tell the user (a setup URL to reconnect).
    notes: std::sync::Mutex<Vec<String>>,
    /// The script's state as the run sees it, and the run's writes.
    state: RunState,
    /// An HTTP-triggered run's response.
    http_reply: HttpReplySlot,
    /// The events the run emitted.
    emitted: EmittedEvents,
    /// The runs it asked for at a time.
    scheduled: ScheduledRuns,
    /// The run's span when its trace is exported (else disabled): host
    /// calls, which may be served on another task, are its children.
    trace: tracing::Span,
}

impl RunServices {
    /// Services for `run`, whose script declared `integrations`; `masker`
    /// holds the run's credential values.
    pub(crate) fn new(
        deps: ServiceDeps,
        run: &RunRow,
        integrations: &[String],
        handlers: &[String],
        masker: Masker,
        given: GivenCredentials,
    ) -> Self {
        let state = RunState::new(
            Box::new(StoreState {
                store: deps.store.clone(),
                script_id: run.script_id.clone(),
            }),
            deps.state_quota,
            masker.clone(),
        );
        let caller = match run.trigger_kind {
            crate::store::TriggerKind::Http => Caller::Http,
            crate::store::TriggerKind::Mcp => Caller::Tool,
            _ => Caller::Nobody,
        };
        let http_reply = HttpReplySlot::new(caller, masker.clone());
        let emitted = EmittedEvents::new(run, deps.emit_limits, masker.clone());
        let scheduled =
            ScheduledRuns::new(run, handlers.to_vec(), deps.emit_limits, masker.clone());
        Self {
            inner: Arc::new(Inner {
                deps,
                user_id: run.user_id.clone(),
                script_id: run.script_id.clone(),
                run_id: run.id.clone(),
                integrations: integrations.to_vec(),
                messages_sent: AtomicU32::new(0),
                messages: Default::default(),
                calls_made: AtomicU32::new(0),
                audited: Default::default(),
                masker,
                given,
                refused_hosts: Default::default(),
                reported: Default::default(),
                notes: Default::default(),
                state,
                http_reply,
                emitted,
                scheduled,
                trace: tracing::Span::current(),
            }),
        }
    }
}

impl RunServices {
    /// What the run asked roost to write, for the run's commit. Taken once:
    /// the services keep nothing afterwards.
    pub(crate) fn take_effects(&self) -> RunEffects {
        let mut messages = self
            .inner
            .messages
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (emitted, queue_limits) = self.inner.emitted.take();
        RunEffects {
            script_id: self.inner.script_id.clone(),
            messages: std::mem::take(&mut *messages),
            state: self.inner.state.take_writes(),
            http_response: self.inner.http_reply.take(),
            emitted,
            queue_limits: Some(queue_limits),
            scheduled: self.inner.scheduled.take(),
        }
    }

    /// What the run's error should add, for the user (a setup URL).
    pub(crate) fn notes(&self) -> Vec<String> {
        self.inner
            .notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    #[cfg(test)]
    fn kept_messages(&self) -> usize {
        self.inner.messages.lock().unwrap().len()
    }
}

impl HostService for RunServices {
    fn handle(&self, request: HostRequest) -> HostFuture {
        let inner = self.inner.clone();
        let traced = crate::telemetry::span(|| host_call_span(&inner, &request.path));
        Box::pin(
            async move {
                let path = request.path.split('?').next().unwrap_or("");
                match (request.method.as_str(), path) {
                    ("POST", "/v1/messages") => inner.send_message(&request.body).await,
                    ("POST", "/v1/http/response") => inner.http_reply.handle(&request.body),
                    ("POST", "/v1/tool/result") => inner.http_reply.handle_tool(&request.body),
                    ("POST", "/v1/events/emit") => inner.emitted.handle(&request.body),
                    ("POST", "/v1/runs/schedule") => inner.scheduled.handle(&request.body),
                    ("POST", _) if path.starts_with("/v1/state/") => {
                        let operation = &path["/v1/state/".len()..];
                        inner.state.handle(operation, &request.body).await
                    }
                    ("POST", _) if path.starts_with("/v1/integrations/") => {
                        let rest = &path["/v1/integrations/".len()..];
                        match rest.split_once('/') {
                            Some(("messaging", "send_message")) => {
                                inner.send_message(&request.body).await
                            }
                            Some((integration, method)) if !method.contains('/') => {
                                inner
                                    .call_integration(integration, method, &request.body)
                                    .await
                            }
                            _ => error(
                                404,
                                "not_found",
                                "integration calls go to /v1/integrations/{id}/{method}".into(),
                            ),
                        }
                    }
                    ("POST", _) if path.starts_with("/v1/credentials/") => {
                        match path["/v1/credentials/".len()..].split_once('/') {
                            Some((integration, "refused")) => {
                                inner.credential_refused(integration).await
                            }
                            _ => error(
                                404,
                                "not_found",
                                "refusals go to /v1/credentials/{id}/refused".into(),
                            ),
                        }
                    }
                    _ => error(
                        404,
                        "not_found",
                        format!("roost has no service at {} {path}", request.method),
                    ),
                }
            }
            .instrument(traced),
        )
    }

    fn response_seen(&self, host: &str, port: u16, status: u16) {
        self.inner.note_response(host, port, status);
    }
}

/// A host call's span in the run's trace, naming the service called (the
/// path without its query, masked: the guest chose it).
fn host_call_span(inner: &Inner, path: &str) -> tracing::Span {
    let path = path.split('?').next().unwrap_or("");
    let service: String = path.trim_start_matches("/v1/").chars().take(120).collect();
    let span = tracing::info_span!(target: crate::telemetry::TARGET, parent: &inner.trace,
        "roost.host_call", roost.host.service = %inner.masker.mask_str(&service));
    if inner.trace.is_disabled() {
        // Not under a traced run span (a run executed outside the queue):
        // it joins the run's trace directly.
        crate::telemetry::bind(&span, &inner.run_id);
    } else {
        crate::telemetry::tag(&span, &inner.run_id);
    }
    span
}

impl Inner {
    /// Adds a line to what the run's error tells the user.
    pub(super) fn note(&self, line: String) {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        if !notes.contains(&line) {
            notes.push(line);
        }
    }
}

/// The script's committed state, read from the store.
struct StoreState {
    store: Arc<dyn Store>,
    script_id: String,
}

#[async_trait::async_trait]
impl CommittedState for StoreState {
    async fn entries_by_keys(&self, keys: &[&str]) -> Result<Vec<StateEntry>, String> {
        self.store
            .state_entries_by_keys(&self.script_id, keys)
            .await
            .map_err(|e| e.to_string())
    }
    async fn entries(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StateEntry>, String> {
        self.store
            .state_entries(&self.script_id, prefix, after, limit)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Input of `messaging.send_message`, as its definition's inputSchema has it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendMessage {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    body: String,
}

impl Inner {
    async fn send_message(&self, body: &[u8]) -> HostResponse {
        if !self.integrations.iter().any(|id| id == "messaging") {
            return error(
                403,
                "integration_not_declared",
                "this script does not declare the `messaging` integration; call \
                 roost_sdk::messaging::init!() and deploy again"
                    .into(),
            );
        }
        let input: SendMessage = match serde_json::from_slice(body) {
            Ok(input) => input,
            Err(e) => return error(400, "invalid_input", format!("the message: {e}")),
        };
        if input.body.is_empty() {
            return error(400, "invalid_input", "`body` is empty".into());
        }
        if input.body.len() > MAX_MESSAGE_BYTES {
            return error(
                413,
                "body_too_large",
                format!("`body` takes at most {MAX_MESSAGE_BYTES} bytes"),
            );
        }
        for (field, value) in [
            ("channel", &input.channel),
            ("to", &input.to),
            ("subject", &input.subject),
        ] {
            if value
                .as_deref()
                .is_some_and(|v| v.chars().count() > MAX_LABEL_CHARS)
            {
                return error(
                    400,
                    "invalid_input",
                    format!("`{field}` takes at most {MAX_LABEL_CHARS} characters"),
                );
            }
        }
        if self.messages_sent.fetch_add(1, Ordering::Relaxed) >= MAX_MESSAGES_PER_RUN {
            return error(
                429,
                "too_many_messages",
                format!("a run may leave at most {MAX_MESSAGES_PER_RUN} messages"),
            );
        }
        let message = MessageRow {
            id: new_id("msg"),
            user_id: self.user_id.clone(),
            script_id: self.script_id.clone(),
            run_id: self.run_id.clone(),
            channel: input.channel.map(|v| self.masker.mask_str(&v)),
            recipient: input.to.map(|v| self.masker.mask_str(&v)),
            subject: input.subject.map(|v| self.masker.mask_str(&v)),
            body: self.masker.mask_str(&input.body),
            created_at: now_millis(),
        };
        tracing::info!(run_id = %self.run_id, message_id = %message.id, "outbox message kept for the run's outcome");
        let id = message.id.clone();
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
        HostResponse::json(201, &json!({ "id": id }))
    }
}

pub(super) fn error(status: u16, code: &str, message: String) -> HostResponse {
    HostResponse::json(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

#[cfg(test)]
#[path = "host_services_tests.rs"]
mod tests;
