//! Events your script emits: the user's `#[on_event]` handlers run for
//! them as for any event.
//!
//! ```ignore
//! use roost_sdk::{Invocation, events, on_event};
//!
//! #[on_event("order.paid")]
//! fn paid(invocation: &Invocation) -> roost_sdk::Result {
//!     let order: serde_json::Value = invocation.payload_as()?;
//!     events::emit("invoice.requested", &serde_json::json!({ "order": order["id"] }))?;
//!     Ok(())
//! }
//! ```
//!
//! An emitted event is committed with the run's success: a run that fails
//! (or whose node dies) emits nothing, and a run executed again emits each
//! event once. Its `source` is the script, and it names the run that
//! emitted it; each event counts the links of its chain from an event that
//! came from outside, and one past the server's limit (16 by default) is
//! recorded as stopped and starts nothing, so two scripts that emit each
//! other's events cannot loop forever. A run emits at most 100 events.

use serde::Serialize;

use crate::Error;

const EMIT_PATH: &str = "/v1/events/emit";

/// Emits an event of type `event_type` (`order.created`: letters, digits,
/// `._:-`) with `payload`; its id, which `GET /v1/events/{id}` shows once
/// the run has succeeded.
pub fn emit(event_type: &str, payload: &impl Serialize) -> Result<String, Error> {
    let payload = serde_json::to_value(payload)
        .map_err(|err| Error::msg(format!("the event's payload is not JSON: {err}")))?;
    let body = serde_json::to_vec(&serde_json::json!({ "type": event_type, "payload": payload }))
        .expect("a JSON value serialises");
    let answer = crate::internal::post(EMIT_PATH, &body, "the event")?;
    answer["event_id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::msg("roost took the event but named no id"))
}
