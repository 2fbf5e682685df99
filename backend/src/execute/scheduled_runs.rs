//! `POST roost.internal/v1/runs/schedule`: runs a script asks for at a
//! time (`roost_sdk::runs::schedule`), queued with its success, once (as
//! its emitted events are).

use std::sync::Mutex;

use roost_sandbox::HostResponse;
use serde::Deserialize;
use serde_json::json;

use super::emitted_events::{Asked, EmitLimits};
use super::host_services::error;
use super::masking::Masker;
use crate::store::{NewRun, RunRow, ScheduledRun, TriggerKind, new_id, now_millis};

/// Most runs one run may schedule.
const MAX_RUNS_PER_RUN: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Schedule {
    handler: String,
    /// Unix ms; `delay_ms` otherwise.
    #[serde(default)]
    at_ms: Option<i64>,
    #[serde(default)]
    delay_ms: Option<i64>,
    #[serde(default)]
    payload: serde_json::Value,
}

/// One run's scheduled runs, until its end.
pub(crate) struct ScheduledRuns {
    run: RunRow,
    handlers: Vec<String>,
    limits: EmitLimits,
    masker: Masker,
    runs: Mutex<Asked<ScheduledRun>>,
}

impl ScheduledRuns {
    /// For `run`, whose script has `handlers`.
    pub(crate) fn new(
        run: &RunRow,
        handlers: Vec<String>,
        limits: EmitLimits,
        masker: Masker,
    ) -> Self {
        Self {
            run: run.clone(),
            handlers,
            limits,
            masker,
            runs: Mutex::default(),
        }
    }

    /// Takes one run (`{"handler", "at_ms" | "delay_ms", "payload"}`).
    pub(crate) fn handle(&self, body: &[u8]) -> HostResponse {
        let asked: Schedule = match serde_json::from_slice(body) {
            Ok(asked) => asked,
            Err(e) => return error(400, "invalid_schedule", format!("the run: {e}")),
        };
        if !self.handlers.contains(&asked.handler) {
            return error(
                404,
                "unknown_handler",
                format!(
                    "this script has no handler `{}`; it has: {}",
                    asked.handler,
                    self.handlers.join(", ")
                ),
            );
        }
        let now = now_millis();
        let at = match (asked.at_ms, asked.delay_ms) {
            (Some(at), None) => at.max(now),
            (None, Some(delay)) if delay >= 0 => now.saturating_add(delay),
            _ => {
                return error(
                    400,
                    "invalid_schedule",
                    "give `at_ms` (Unix ms) or `delay_ms` (at least 0)".into(),
                );
            }
        };
        if at - now > crate::triggers::manual::MAX_AHEAD_MS {
            return error(
                400,
                "invalid_schedule",
                "a run can be put at most 366 days ahead".into(),
            );
        }
        // A script that schedules itself again and again is a chain, too.
        let depth = self.run.chain_depth.saturating_add(1);
        if depth > self.limits.chain_limit {
            return error(
                409,
                "chain_limit",
                format!(
                    "this run is {} links from an outside trigger; runs it schedules would pass \
                     the limit of {}",
                    self.run.chain_depth, self.limits.chain_limit
                ),
            );
        }
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(refused) = runs.admit(&asked.payload, &self.limits, MAX_RUNS_PER_RUN, "runs") {
            return refused;
        }
        let id = new_id("run");
        runs.items.push(ScheduledRun {
            id: id.clone(),
            run: NewRun {
                user_id: self.run.user_id.clone(),
                script_id: self.run.script_id.clone(),
                script_version: self.run.script_version,
                handler: Some(asked.handler),
                trigger_kind: TriggerKind::Manual,
                trigger_spec: format!("scheduled by {}", self.run.id),
                payload: self.masker.mask_json(asked.payload),
                not_before: Some(at),
            },
            chain_depth: depth,
        });
        HostResponse::json(200, &json!({ "run_id": id, "not_before": at }))
    }

    /// The runs, once, for the run's commit.
    pub(crate) fn take(&self) -> Vec<ScheduledRun> {
        std::mem::take(&mut self.runs.lock().unwrap_or_else(|p| p.into_inner()).items)
    }
}
