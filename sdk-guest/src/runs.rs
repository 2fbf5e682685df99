//! Runs your script asks for at a time: one of its handlers, later, with
//! a payload.
//!
//! ```ignore
//! use std::time::Duration;
//! use roost_sdk::runs::{self, When};
//!
//! // Remind in a day: `remind` runs tomorrow with this payload.
//! runs::schedule("remind", When::In(Duration::from_secs(86_400)), &serde_json::json!({ "order": 7 }))?;
//! ```
//!
//! The run is queued with this run's success, once (a run that fails asks
//! for nothing); it runs the same version of the script, and can be seen
//! (`not_before`) and cancelled before it starts like any queued run. A
//! script that keeps scheduling itself counts links as emitted events do,
//! and is refused past the server's chain limit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::Error;

const SCHEDULE_PATH: &str = "/v1/runs/schedule";

/// When a scheduled run may start.
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// This long from now.
    In(Duration),
    /// At this time (a time past is now).
    At(SystemTime),
}

/// A run that was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Its id.
    pub run_id: String,
    /// When it may start (Unix ms).
    pub not_before: i64,
}

/// Asks for a run of `handler` of this script at `when`, with `payload`.
pub fn schedule(handler: &str, when: When, payload: &impl Serialize) -> Result<Scheduled, Error> {
    let payload = serde_json::to_value(payload)
        .map_err(|err| Error::msg(format!("the run's payload is not JSON: {err}")))?;
    let mut body = serde_json::json!({ "handler": handler, "payload": payload });
    match when {
        When::In(delay) => {
            body["delay_ms"] = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX).into();
        }
        When::At(at) => {
            let ms = at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            body["at_ms"] = ms.into();
        }
    }
    let body = serde_json::to_vec(&body).expect("a JSON value serialises");
    let answer = crate::internal::post(SCHEDULE_PATH, &body, "the run")?;
    match (answer["run_id"].as_str(), answer["not_before"].as_i64()) {
        (Some(run_id), Some(not_before)) => Ok(Scheduled {
            run_id: run_id.to_string(),
            not_before,
        }),
        _ => Err(Error::msg("roost took the run but named no id")),
    }
}
