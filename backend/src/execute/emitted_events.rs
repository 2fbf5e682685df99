//! `POST roost.internal/v1/events/emit`: events a script emits
//! (`roost_sdk::events::emit`), kept with the run and committed with its
//! success, once: a failed or crashed run emits nothing, and a run executed
//! again after its node died emits under the same ids.

use std::sync::Mutex;

use roost_sandbox::HostResponse;
use serde::Deserialize;
use serde_json::json;

use super::host_services::error;
use super::masking::Masker;
use crate::store::{Emitted, NewEvent, QueueLimits, RunRow};

/// Most events one run may emit.
pub(crate) const MAX_EVENTS_PER_RUN: usize = 100;

/// Most payload bytes one run's emitted events (and, apart, its scheduled
/// runs) hold in memory until its end.
pub(crate) const MAX_BYTES_PER_RUN: usize = 4 * 1024 * 1024;

/// What a run has asked for so far (events, or runs), under its caps.
pub(crate) struct Asked<T> {
    pub(crate) items: Vec<T>,
    bytes: usize,
}

impl<T> Default for Asked<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            bytes: 0,
        }
    }
}

impl<T> Asked<T> {
    /// Room for one more `noun` with `payload`: within the payload limit,
    /// at most `max` of them and `MAX_BYTES_PER_RUN` bytes in all; the
    /// answer to the script otherwise.
    pub(crate) fn admit(
        &mut self,
        payload: &serde_json::Value,
        limits: &EmitLimits,
        max: usize,
        noun: &str,
    ) -> Result<(), HostResponse> {
        let size = serde_json::to_vec(payload).map_or(usize::MAX, |b| b.len());
        if size > limits.max_payload_bytes {
            return Err(error(
                413,
                "payload_too_large",
                format!("a payload takes at most {} bytes", limits.max_payload_bytes),
            ));
        }
        if self.items.len() >= max {
            return Err(error(
                429,
                &format!("too_many_{noun}"),
                format!("a run may ask for at most {max} {noun}"),
            ));
        }
        if self.bytes.saturating_add(size) > MAX_BYTES_PER_RUN {
            return Err(error(
                413,
                "payload_budget_spent",
                format!("the {noun} of one run carry at most {MAX_BYTES_PER_RUN} bytes of payload"),
            ));
        }
        self.bytes += size;
        Ok(())
    }
}

/// What bounds the events runs emit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EmitLimits {
    /// Most links from an outside event: an event past it is recorded as
    /// stopped and starts nothing.
    pub(crate) chain_limit: i64,
    /// Largest payload, as for a posted event.
    pub(crate) max_payload_bytes: usize,
    /// The owner's queue caps: an event that would pass them is recorded as
    /// stopped (`queue_full`) rather than failing the run that emitted it.
    pub(crate) queue: QueueLimits,
}

impl Default for EmitLimits {
    fn default() -> Self {
        Self {
            chain_limit: 16,
            max_payload_bytes: 1024 * 1024,
            queue: QueueLimits {
                runs: i64::MAX,
                payload_bytes: i64::MAX,
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Emit {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    payload: serde_json::Value,
}

/// One run's emitted events, until its end.
pub(crate) struct EmittedEvents {
    user_id: String,
    script_id: String,
    run_id: String,
    /// The depth of the events this run emits: one more than its own.
    depth: i64,
    limits: EmitLimits,
    masker: Masker,
    events: Mutex<Asked<Emitted>>,
}

impl EmittedEvents {
    pub(crate) fn new(run: &RunRow, limits: EmitLimits, masker: Masker) -> Self {
        Self {
            user_id: run.user_id.clone(),
            script_id: run.script_id.clone(),
            run_id: run.id.clone(),
            depth: run.chain_depth.saturating_add(1),
            limits,
            masker,
            events: Mutex::default(),
        }
    }

    /// Takes one event (`{"type", "payload"}`), checked; answers its id.
    pub(crate) fn handle(&self, body: &[u8]) -> HostResponse {
        let emit: Emit = match serde_json::from_slice(body) {
            Ok(emit) => emit,
            Err(e) => return error(400, "invalid_event", format!("the event: {e}")),
        };
        if !crate::triggers::valid_type(&emit.event_type) {
            return error(
                400,
                "invalid_event_type",
                "an event type is 1-128 of [A-Za-z0-9._:-], dot-separated segments not empty"
                    .into(),
            );
        }
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(refused) =
            events.admit(&emit.payload, &self.limits, MAX_EVENTS_PER_RUN, "events")
        {
            return refused;
        }
        // Named by the run and its count: a run executed again after its
        // node died emits the same ids, and only one execution commits.
        let event_id = format!("{}.e{}", self.run_id, events.items.len() + 1);
        let payload = self.masker.mask_json(emit.payload);
        events.items.push(Emitted {
            event: NewEvent {
                user_id: self.user_id.clone(),
                event_id: event_id.clone(),
                event_type: emit.event_type,
                source: Some(format!("roost:script/{}", self.script_id)),
                payload,
                source_run_id: Some(self.run_id.clone()),
                chain_depth: self.depth,
            },
            past_chain_limit: self.depth > self.limits.chain_limit,
        });
        HostResponse::json(200, &json!({ "event_id": event_id }))
    }

    /// The events, once, for the run's commit.
    pub(crate) fn take(&self) -> (Vec<Emitted>, QueueLimits) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        (std::mem::take(&mut events.items), self.limits.queue)
    }
}
