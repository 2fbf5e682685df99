//! Runs begun on the node that received them, outside the queue: an HTTP
//! request's run, whose caller is waiting. Nothing is written when it
//! begins; its record, outcome and effects are written together once it
//! ends (one group-committed write on SQLite), and only then is its caller
//! answered. A run still going at its caller's deadline is recorded as
//! running at that moment, heart-beats, and is finished as a claimed run
//! is. See docs/http-handlers.md for what this means when a node dies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;

use super::Runner;
use super::live_output::OutputFlush;
use crate::execute::LiveOutput;
use crate::store::{
    HttpReply, NewRun, RunFinish, RunRow, RunStatus, StartedRun, StoreError, StoreResult, new_id,
    now_millis,
};

/// How a run begun here stood when its caller's deadline came.
#[derive(Debug)]
pub enum HereEnd {
    /// It ended, and its record is written.
    Ended {
        /// The run.
        run_id: String,
        /// How it is recorded (a success whose state writes were refused
        /// is a failure).
        status: RunStatus,
        /// What it answered, if it succeeded with an answer.
        reply: Option<HttpReply>,
    },
    /// It is still going, recorded as running.
    Going {
        /// The run.
        run_id: String,
    },
}

/// The places a run takes to be run here: one of its owner's (half the
/// node's, so one tenant's slow handlers always leave places for the
/// others), one of its script's (its concurrency cap, on this node) and
/// one of the node's.
pub struct HereSlot {
    _user: OwnedSemaphorePermit,
    _script: OwnedSemaphorePermit,
    _node: OwnedSemaphorePermit,
}

/// The caps on the runs begun here: per user, per script, per node.
/// Callers wait for a place in arrival order.
pub(super) struct HereGates {
    node: Arc<Semaphore>,
    users: KeyedGates,
    scripts: KeyedGates,
}

impl HereGates {
    pub(super) fn new(node: usize, per_script: usize) -> Self {
        let node = node.max(1);
        Self {
            node: Arc::new(Semaphore::new(node)),
            users: KeyedGates::new((node / 2).max(1)),
            scripts: KeyedGates::new(per_script),
        }
    }
}

/// One semaphore of `cap` places per key, made when first asked for.
struct KeyedGates {
    cap: usize,
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl KeyedGates {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            gates: Mutex::default(),
        }
    }

    fn gate(&self, key: &str) -> Arc<Semaphore> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        // Keys with nothing running here are forgotten once the map
        // grows, so it holds about as many as run at once.
        if gates.len() >= 1024 {
            let cap = self.cap;
            gates.retain(|_, gate| Arc::strong_count(gate) > 1 || gate.available_permits() < cap);
        }
        gates
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.cap)))
            .clone()
    }
}

/// A run's places while it runs, counted as running on this node.
struct Running {
    _slot: HereSlot,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Running {
    fn new(slot: HereSlot, metrics: &Arc<crate::metrics::Metrics>) -> Self {
        metrics.running.inc();
        Self {
            _slot: slot,
            metrics: metrics.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.metrics.running.dec();
    }
}

impl Runner {
    /// Waits, until `deadline` at the latest, for a place to run one of
    /// `user_id`'s runs of `script_id` here; `None` if none came by then.
    pub async fn here_slot(
        &self,
        user_id: &str,
        script_id: &str,
        deadline: Instant,
    ) -> Option<HereSlot> {
        let user = self.here.users.gate(user_id);
        let script = self.here.scripts.gate(script_id);
        let node = self.here.node.clone();
        let places = async {
            let user = user.acquire_owned().await.ok()?;
            let script = script.acquire_owned().await.ok()?;
            let node = node.acquire_owned().await.ok()?;
            Some(HereSlot {
                _user: user,
                _script: script,
                _node: node,
            })
        };
        tokio::time::timeout_at(deadline, places)
            .await
            .ok()
            .flatten()
    }

    /// Runs `run` here, in `slot`, and tells how it stood at `deadline`:
    /// ended and recorded, or recorded as running and going on (to be
    /// finished as a claimed run is). An error means nothing was recorded
    /// and the run is stopped.
    pub async fn run_here(
        self: &Arc<Self>,
        slot: HereSlot,
        run: NewRun,
        deadline: Instant,
    ) -> StoreResult<HereEnd> {
        let id = new_id("run");
        let started = StartedRun {
            // A worker id of its own: on PostgreSQL a script's running runs
            // are counted by the workers that hold them.
            worker_id: format!("{}-{id}", self.here_worker_id),
            id,
            run,
            started_at: now_millis(),
        };
        let (answer, answered) = oneshot::channel();
        // Its own task: a caller that hangs up leaves the run to end and
        // be recorded all the same.
        let runner = self.clone();
        tokio::spawn(async move { runner.drive_here(slot, started, deadline, answer).await });
        answered.await.unwrap_or_else(|_| {
            Err(StoreError::Writer(
                "a run begun here stopped unrecorded".into(),
            ))
        })
    }

    async fn drive_here(
        &self,
        slot: HereSlot,
        started: StartedRun,
        deadline: Instant,
        answer: oneshot::Sender<StoreResult<HereEnd>>,
    ) {
        let row = running_row(&started);
        let span = tracing::info_span!("run", run_id = %row.id, script = %row.script_id, version = row.script_version);
        let settings = self
            .settings
            .get(self.store.as_ref(), &row.script_id, row.script_version)
            .await;
        let running = Running::new(slot, &self.metrics);
        let live = LiveOutput::new();
        // Its trace (when exported), as for a queued run: the request's
        // side, then this execution with the sandbox and host calls beneath.
        crate::telemetry::queued(&row.id, row.trigger_kind.as_str(), &row.script_id);
        let traced = crate::telemetry::span(|| {
            tracing::info_span!(target: crate::telemetry::TARGET, "roost.execute",
                roost.script_id = %row.script_id, roost.script_version = row.script_version,
                roost.handler = row.handler.as_deref().unwrap_or(""),
                roost.trigger = row.trigger_kind.as_str(), roost.worker = %row.worker_id.as_deref().unwrap_or(""))
        });
        crate::telemetry::bind(&traced, &row.id);
        let execution = tracing::Instrument::instrument(
            self.executor.execute(&row, settings.as_ref(), &live),
            traced,
        );
        tokio::pin!(execution);
        let finish = tokio::select! {
            finish = &mut execution => Some(finish),
            _ = tokio::time::sleep_until(deadline) => None,
        };
        match finish {
            Some(finish) => {
                // Its places are for running: the next run may begin while
                // this one's record is written.
                drop(running);
                let ended = self.record_ended(&started, finish, &span).await;
                drop(answer.send(ended));
            }
            None => {
                match self.store.record_started(&started).await {
                    Ok(()) => {
                        tracing::info!(parent: &span, trigger = %row.trigger_kind, "run outlasted its caller's deadline; recorded as running");
                        drop(answer.send(Ok(HereEnd::Going {
                            run_id: started.id.clone(),
                        })));
                        self.finish_going(&started, execution, live.clone(), &span)
                            .await;
                    }
                    Err(err) => {
                        tracing::error!(parent: &span, error = %err, "recording a run that outlasted its caller's deadline failed; the script was stopped");
                        drop(answer.send(Err(err)));
                    }
                }
                drop(running);
            }
        }
    }

    /// Writes a run's record with its end, and says how it is recorded.
    async fn record_ended(
        &self,
        started: &StartedRun,
        finish: RunFinish,
        span: &tracing::Span,
    ) -> StoreResult<HereEnd> {
        self.metrics
            .run_duration
            .observe(finish.duration_ms as f64 / 1000.0);
        let status = match self.store.record_ended(started, &finish).await {
            Ok(status) => status,
            Err(err) => {
                tracing::error!(parent: span, error = %err, "recording the run failed; its caller gets an error and nothing it did stands");
                return Err(err);
            }
        };
        tracing::info!(
            parent: span,
            trigger = %started.run.trigger_kind,
            status = %status,
            duration_ms = finish.duration_ms,
            has_error = finish.error.is_some(),
            "run finished"
        );
        let reply = match status {
            RunStatus::Succeeded => finish.effects.http_response,
            _ => None,
        };
        Ok(HereEnd::Ended {
            run_id: started.id.clone(),
            status,
            reply,
        })
    }

    /// Lets a run recorded as running go on to its end, heart-beating and
    /// writing its output as a worker does, and finishes it; a heartbeat
    /// that finds it cancelled stops it.
    async fn finish_going(
        &self,
        started: &StartedRun,
        mut execution: std::pin::Pin<&mut impl std::future::Future<Output = RunFinish>>,
        live: LiveOutput,
        span: &tracing::Span,
    ) {
        // Recorded as running, its output is written as it grows.
        let mut flush = OutputFlush::new(live, self.config.output_flush);
        let mut beat = tokio::time::interval_at(
            Instant::now() + self.config.heartbeat,
            self.config.heartbeat,
        );
        let give_up_after: Duration = self
            .config
            .stale_after
            .saturating_sub(self.config.heartbeat);
        let mut last_beat = Instant::now();
        let finish = loop {
            tokio::select! {
                finish = &mut execution => break finish,
                _ = beat.tick() => match self.store.heartbeat_run(&started.id, &started.worker_id).await {
                    Ok(true) => last_beat = Instant::now(),
                    Ok(false) => {
                        tracing::info!(parent: span, "run cancelled while running; the script was stopped");
                        return;
                    }
                    Err(err) if last_beat.elapsed() >= give_up_after => {
                        tracing::error!(parent: span, error = %err, "heartbeats failing for too long; stopping the script");
                        return;
                    }
                    Err(err) => tracing::warn!(parent: span, error = %err, "heartbeat failed"),
                },
                _ = flush.due() => if !flush.write(self.store.as_ref(), &started.id, &started.worker_id, span).await {
                    tracing::info!(parent: span, "run cancelled while running; the script was stopped");
                    return;
                },
            }
        };
        self.metrics
            .run_duration
            .observe(finish.duration_ms as f64 / 1000.0);
        match self
            .store
            .finish_run(&started.id, &started.worker_id, &finish, None)
            .await
        {
            Ok(true) => {
                tracing::info!(parent: span, status = %finish.status, duration_ms = finish.duration_ms, has_error = finish.error.is_some(), "run finished");
                drop(self.finished.send(started.id.clone()));
            }
            Ok(false) => {
                tracing::info!(parent: span, "run ended after it was cancelled; outcome dropped")
            }
            Err(err) => {
                tracing::error!(parent: span, error = %err, "recording the run's outcome failed")
            }
        }
    }
}

/// The run as the executor sees it: running, first attempt.
fn running_row(started: &StartedRun) -> RunRow {
    let run = &started.run;
    RunRow {
        id: started.id.clone(),
        user_id: run.user_id.clone(),
        script_id: run.script_id.clone(),
        script_version: run.script_version,
        handler: run.handler.clone(),
        trigger_kind: run.trigger_kind,
        trigger_spec: run.trigger_spec.clone(),
        payload: run.payload.clone(),
        status: RunStatus::Running,
        attempt: 1,
        queued_at: started.started_at,
        started_at: Some(started.started_at),
        worker_id: Some(started.worker_id.clone()),
        ..RunRow::default()
    }
}
