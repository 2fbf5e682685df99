//! A worker: claims a run, runs it (heart-beating meanwhile), and leaves
//! its outcome in its hand (hand.rs), which writes it, and takes the next
//! runs, on the worker's next trip to the store.

use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument as _;

use super::Runner;
use super::hand::{Hand, RUNS_PER_TRIP};
use super::live_output::OutputFlush;
use crate::execute::LiveOutput;
use crate::store::{
    NextClaim, RetryPlan, RunReport, RunRow, RunStatus, ScriptSettings, now_millis,
};

impl Runner {
    pub(super) async fn work(&self, worker_id: String, mut stop: watch::Receiver<bool>) {
        let mut hand = Hand::new(
            worker_id,
            self.store.clone(),
            self.finished.clone(),
            self.wake.clone(),
            self.due_changed.clone(),
        );
        loop {
            if let Some(run) = hand.next_unstarted() {
                let Some(seat) = self.workers_by_user.take(&run.user_id) else {
                    // Other workers took the user's last places since the
                    // claim: the run waits for one, in the queue.
                    hand.put_back(run);
                    hand.flush().await;
                    continue;
                };
                let user_id = run.user_id.clone();
                self.run_one(&mut hand, run).await;
                // A node told to stop takes no new runs.
                let stopping = *stop.borrow();
                // The seat is held through the trip, which may hand this
                // worker the user's next runs: meanwhile the user's seats
                // read as full to the other workers, whose claims would
                // take runs they then have no seat for.
                hand.after_run(stopping, || self.next_claim(Some(&user_id)))
                    .await;
                drop(seat);
                continue;
            }
            if *stop.borrow() {
                return;
            }
            // The trip after the last run just asked the store, with this
            // worker's seat counted as free: asking again at once would
            // find what it found, at the price of a transaction.
            if hand.take_came_back_empty() {
                self.idle(&mut stop).await;
                continue;
            }
            match self
                .store
                .claim_run(
                    hand.worker_id(),
                    self.config.per_script_concurrency,
                    &self.workers_by_user.full(),
                )
                .await
            {
                Ok(Some(run)) => hand.take(run),
                Ok(None) => self.idle(&mut stop).await,
                Err(err) => {
                    tracing::error!(error = %err, "claiming a run failed; retrying");
                    tokio::time::sleep(self.config.poll).await;
                }
            }
        }
    }

    /// Waits until new runs may be queued: a wake, the poll's period, or
    /// the node stopping.
    async fn idle(&self, stop: &mut watch::Receiver<bool>) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(self.config.poll) => {}
            _ = stop.changed() => {}
        }
    }

    /// What a worker asks for with its reports: up to `RUNS_PER_TRIP` runs,
    /// its share of the queue; `seated` is the user whose slot it holds
    /// until the trip ends, which counts as free.
    ///
    /// The queue is shared among the workers not running a run (this one
    /// among them), and no more of them than one user may hold: with all
    /// the work one user's, the others cannot take it. Dividing by every
    /// worker handed one run per trip while the queue was a few runs deep,
    /// and the queue then grew until the shares were large enough.
    fn next_claim(&self, seated: Option<&str>) -> NextClaim {
        let running = self
            .workers_by_user
            .held()
            .saturating_sub(usize::from(seated.is_some()));
        let free = self.config.workers.saturating_sub(running);
        NextClaim {
            per_script_limit: self.config.per_script_concurrency,
            runs: RUNS_PER_TRIP,
            workers: free.min(self.workers_by_user.cap()).max(1),
            skip_users: self.workers_by_user.full_besides(seated),
        }
    }

    /// Runs a run handed to the worker; its outcome joins the worker's
    /// unreported ones.
    async fn run_one(&self, hand: &mut Hand, run: RunRow) {
        let ready_at = run.not_before.unwrap_or(run.queued_at).max(run.queued_at);
        let started_at = now_millis();
        self.metrics
            .trigger_lag
            .observe((started_at - ready_at) as f64 / 1000.0);
        self.metrics.running.inc();
        self.run_claimed(hand, run, started_at).await;
        self.metrics.running.dec();
    }

    async fn run_claimed(&self, hand: &mut Hand, run: RunRow, started_at: i64) {
        let span = tracing::info_span!("run", run_id = %run.id, script = %run.script_id, version = run.script_version);
        tracing::info!(parent: &span, worker = %hand.worker_id(), attempt = run.attempt, "run started");
        // Run the script, heart-beating meanwhile. A heartbeat that finds the
        // run no longer ours (cancelled) drops the execution, which stops the
        // guest at its next epoch check.
        // One read of the script's limits and retry policy serves the whole run.
        let settings = self
            .settings
            .get(self.store.as_ref(), &run.script_id, run.script_version)
            .await;
        let live = LiveOutput::new();
        // The run's trace (when exported): this side's span, the sandbox's
        // and the host calls' beneath it.
        let traced = crate::telemetry::span(|| {
            tracing::info_span!(target: crate::telemetry::TARGET, "roost.execute",
                roost.script_id = %run.script_id, roost.script_version = run.script_version,
                roost.handler = run.handler.as_deref().unwrap_or(""),
                roost.trigger = run.trigger_kind.as_str(), roost.attempt = run.attempt,
                roost.worker = %hand.worker_id(), roost.status = tracing::field::Empty)
        });
        crate::telemetry::bind(&traced, &run.id);
        let execution = self
            .executor
            .execute(&run, settings.as_ref(), &live)
            .instrument(traced.clone());
        tokio::pin!(execution);
        // Its output so far is written as it grows, for whoever follows it.
        let mut flush = OutputFlush::new(live.clone(), self.config.output_flush);
        // The first beat is one period from now. (An interval's immediate
        // first tick still waits for the timer's next millisecond, which
        // cost every run up to 1 ms.)
        let mut beat = tokio::time::interval_at(
            tokio::time::Instant::now() + self.config.heartbeat,
            self.config.heartbeat,
        );
        // A node that cannot record heartbeats (database unreachable) will
        // see its run re-queued by another node's reaper once the heartbeat
        // is stale. It stops the script a beat before that, so a run never
        // executes on two nodes at once.
        let give_up_after = self
            .config
            .stale_after
            .saturating_sub(self.config.heartbeat);
        let mut last_beat = tokio::time::Instant::now();
        // A run still going at this point holds up the outcomes before it
        // and the runs handed out after it: those are then written, and
        // given back for other workers.
        let report_by = hand.report_by(last_beat);
        let finish = loop {
            tokio::select! {
                finish = &mut execution => break finish,
                _ = tokio::time::sleep_until(report_by), if hand.waiting() => {
                    hand.flush().await;
                }
                _ = beat.tick() => match self.store.heartbeat_run(&run.id, hand.worker_id()).await {
                    Ok(true) => last_beat = tokio::time::Instant::now(),
                    Ok(false) => {
                        tracing::info!(parent: &span, "run cancelled or taken over while running; the script was stopped");
                        return;
                    }
                    Err(err) if last_beat.elapsed() >= give_up_after => {
                        tracing::error!(parent: &span, error = %err, "heartbeats failing for too long; stopping the script so another node can run it");
                        return;
                    }
                    Err(err) => tracing::warn!(parent: &span, error = %err, "heartbeat failed"),
                },
                _ = flush.due() => if !flush.write(self.store.as_ref(), &run.id, hand.worker_id(), &span).await {
                    tracing::info!(parent: &span, "run cancelled or taken over while running; the script was stopped");
                    return;
                },
            }
        };
        self.metrics
            .run_duration
            .observe(finish.duration_ms as f64 / 1000.0);
        traced.record("roost.status", finish.status.as_str());
        // A success with state writes is recorded as a failure if the
        // writes are refused at its commit: it carries a failure's retry.
        let commit_may_fail =
            finish.status == RunStatus::Succeeded && !finish.effects.state.is_empty();
        let as_failed = if commit_may_fail {
            RunStatus::Failed
        } else {
            finish.status
        };
        let retry = self.retry_plan(&run, as_failed, settings.as_ref());
        if let Some(retry) = retry.as_ref().filter(|_| !commit_may_fail) {
            tracing::info!(parent: &span, attempt = retry.attempt, not_before = retry.not_before, "run failed; retry queued");
        }
        hand.finished(
            RunReport {
                run_id: run.id.clone(),
                finish,
                retry,
                started_at: Some(started_at),
            },
            span,
        );
    }

    /// Whether a finished run gets another attempt, and when: exponential
    /// backoff from `retry_base`, with jitter so retries of many runs that
    /// failed together do not return together.
    fn retry_plan(
        &self,
        run: &RunRow,
        status: RunStatus,
        settings: Option<&ScriptSettings>,
    ) -> Option<RetryPlan> {
        // An HTTP request's or a tool call's run answers its caller once; a
        // retry would answer nobody, so the caller decides whether to ask
        // again.
        if matches!(
            run.trigger_kind,
            crate::store::TriggerKind::Http | crate::store::TriggerKind::Mcp
        ) {
            return None;
        }
        let policy = settings?.retries;
        let retryable = status == RunStatus::Failed
            || (policy.on_limits
                && (status == RunStatus::TimedOut || status == RunStatus::LimitExceeded));
        if !retryable || run.attempt > policy.max {
            return None;
        }
        let exponent = u32::try_from(run.attempt - 1).unwrap_or(u32::MAX).min(16);
        let backoff = self
            .config
            .retry_base
            .saturating_mul(1 << exponent)
            .min(Duration::from_secs(600));
        let jitter = 0.5 + rand::random::<f64>();
        let delay_ms = (backoff.as_millis() as f64 * jitter) as i64;
        Some(RetryPlan {
            attempt: run.attempt + 1,
            first_run_id: run.first_run_id.clone().unwrap_or_else(|| run.id.clone()),
            not_before: now_millis() + delay_ms,
        })
    }
}
