//! Manual runs: a user asks for a run of one of their scripts (`POST
//! /v1/scripts/{id}/run`, `roost run`), at most once per idempotency key,
//! and may wait for its end.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::queue::Runner;
use crate::store::{
    Enqueued, HttpReply, IdempotencyKey, MethodCallRow, NewRun, QueueLimits, RunLogs, RunRow,
    Store, StoreError, TriggerKind,
};

/// The furthest ahead a run at a time can be put (366 days, in ms).
pub const MAX_AHEAD_MS: i64 = 366 * 24 * 3600 * 1000;

/// What a user asks for.
#[derive(Debug, Clone, Default)]
pub struct ManualRequest {
    /// The handler to run; `None` for a script's only one.
    pub handler: Option<String>,
    /// The run's payload.
    pub payload: serde_json::Value,
    /// The request's idempotency key: a repeat within the window queues
    /// nothing and answers with the first request's run.
    pub idempotency_key: Option<String>,
    /// How long to wait for the run's end, if at all.
    pub wait: Option<Duration>,
    /// Who asks: a person or a program (`Manual`, the default), or an
    /// agent calling a tool (`Mcp`), whose run answers with a result.
    pub trigger: TriggerKind,
    /// A run at a time: not before this (Unix ms).
    pub not_before: Option<i64>,
}

/// A manual run, as started.
#[derive(Debug)]
pub struct Started {
    /// The run (the first request's, for a repeat); for a request that
    /// waited, as it was when the wait ended (ended, or still going).
    pub run: RunRow,
    /// With an idempotency key: whether this request repeats an earlier one.
    pub replayed: Option<bool>,
    /// For a request that waited: what the run left, as far as it got.
    pub waited: Option<RunOutput>,
}

/// What a run left: its output and its integration calls.
#[derive(Debug)]
pub struct RunOutput {
    /// Its output so far.
    pub logs: RunLogs,
    /// Its host-mediated calls, oldest first.
    pub method_calls: Vec<MethodCallRow>,
    /// What a tool call's run answered, recorded with its success.
    pub reply: Option<HttpReply>,
}

/// Why a manual run was not started.
#[derive(Debug, thiserror::Error)]
pub enum ManualRunError {
    /// The user has no such script.
    #[error("no such script")]
    NoScript,
    /// The script has no handler of that name.
    #[error("the script has no handler `{handler}`")]
    UnknownHandler {
        /// The handler asked for.
        handler: String,
        /// The script's handlers.
        handlers: Vec<String>,
    },
    /// The script has several handlers and the request named none.
    #[error("the script has {} handlers; name one with `handler`: {}", handlers.len(), handlers.join(", "))]
    HandlerRequired {
        /// The script's handlers.
        handlers: Vec<String>,
    },
    /// The user already has as many requests waiting as allowed here.
    #[error("you already have {0} requests waiting on runs at this server")]
    TooManyWaits(usize),
    /// The run a repeated request names is gone (past its retention).
    #[error("the run this request started is gone")]
    RunGone,
    /// The idempotency key was used for another request.
    #[error("this idempotency key was already used for a different request")]
    KeyReused,
    /// The store failed, or refused (a full queue).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Starts manual runs.
#[derive(Clone)]
pub struct ManualRuns {
    store: Arc<dyn Store>,
    runner: Arc<Runner>,
    limits: QueueLimits,
}

impl ManualRuns {
    /// Manual runs queued in `runner`, each refused while the user's queue
    /// is past `limits`.
    pub fn new(store: Arc<dyn Store>, runner: Arc<Runner>, limits: QueueLimits) -> Self {
        Self {
            store,
            runner,
            limits,
        }
    }

    /// Starts a run of `script_id` for `user_id`, and waits for its end if
    /// asked to.
    pub async fn start(
        &self,
        user_id: &str,
        script_id: &str,
        request: ManualRequest,
    ) -> Result<Started, ManualRunError> {
        let key = request
            .idempotency_key
            .as_deref()
            .map(|key| idempotency_key(key, script_id, &request));
        let script = self
            .store
            .get_script(user_id, script_id)
            .await?
            .ok_or(ManualRunError::NoScript)?;
        let triggers = self.store.triggers(&script.id).await?;
        let handlers: Vec<String> = triggers.into_iter().map(|t| t.handler).collect();
        match &request.handler {
            Some(handler) if !handlers.is_empty() && !handlers.contains(handler) => {
                return Err(ManualRunError::UnknownHandler {
                    handler: handler.clone(),
                    handlers,
                });
            }
            None if handlers.len() > 1 => {
                return Err(ManualRunError::HandlerRequired { handlers });
            }
            _ => {}
        }
        // A request that would wait takes its place first, so a refused one
        // queues nothing.
        let wait_slot = match request.wait {
            Some(_) => Some(
                self.runner
                    .wait_slot(user_id)
                    .ok_or_else(|| ManualRunError::TooManyWaits(self.runner.waits_per_user()))?,
            ),
            None => None,
        };
        let new_run = NewRun {
            user_id: user_id.to_string(),
            script_id: script.id.clone(),
            script_version: script.current_version,
            handler: request.handler,
            trigger_kind: request.trigger,
            trigger_spec: String::new(),
            payload: request.payload,
            not_before: request.not_before,
        };
        let (run, replayed) = match self
            .runner
            .enqueue_manual(&new_run, key.as_ref(), self.limits)
            .await?
        {
            Enqueued::New(run) => (*run, false),
            Enqueued::Repeat {
                same_request: false,
                ..
            } => return Err(ManualRunError::KeyReused),
            Enqueued::Repeat { run_id, .. } => {
                let run = self
                    .store
                    .get_run(user_id, &run_id)
                    .await?
                    .ok_or(ManualRunError::RunGone)?;
                (run, true)
            }
        };
        let replayed = key.is_some().then_some(replayed);
        let (Some(slot), Some(timeout)) = (wait_slot, request.wait) else {
            return Ok(Started {
                run,
                replayed,
                waited: None,
            });
        };
        let run = self.runner.wait(&slot, user_id, &run.id, timeout).await?;
        let logs = self
            .store
            .run_logs(user_id, &run.id)
            .await?
            .unwrap_or_default();
        let method_calls = self.store.method_calls(&run.id).await?;
        let reply = match run.trigger_kind {
            TriggerKind::Mcp if run.status.is_terminal() => {
                self.store.http_response(&run.id).await?
            }
            _ => None,
        };
        Ok(Started {
            run,
            replayed,
            waited: Some(RunOutput {
                logs,
                method_calls,
                reply,
            }),
        })
    }
}

/// Idempotency key `key` with a hash of what the request asks for: the
/// script, the handler and the payload.
fn idempotency_key(key: &str, script_id: &str, request: &ManualRequest) -> IdempotencyKey {
    let mut hash = Sha256::new();
    // Not the time of a run at a time: a `delay` repeated is the same ask.
    for part in [
        script_id,
        request.handler.as_deref().unwrap_or(""),
        &request.payload.to_string(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    IdempotencyKey {
        key: key.to_string(),
        request_hash: hex::encode(hash.finalize()),
    }
}
