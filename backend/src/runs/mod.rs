//! Runs: the durable queue in the store, a pool of workers claiming from
//! it, heart-beating while they run, and a reaper that puts the runs of a
//! dead worker back on the queue.

mod execute;
mod host_calls;
mod host_services;
pub mod masking;
mod refusals;
mod settings_cache;
mod user_slots;
mod waiting;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

pub use execute::Executor;
pub use host_services::{MAX_MESSAGE_BYTES, MAX_MESSAGES_PER_RUN};
pub use waiting::WaitSlot;

use crate::metrics::Metrics;
use crate::store::{
    Enqueued, IdempotencyKey, NewRun, NextClaim, QueueLimits, RetryPlan, RunReport, RunRow,
    RunStatus, ScriptSettings, Store, StoreResult, now_millis,
};

/// Worker-pool settings.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Concurrent runs on this node.
    pub workers: usize,
    /// How often a running run's heartbeat is written.
    pub heartbeat: Duration,
    /// A running run whose heartbeat is older than this is re-queued.
    pub stale_after: Duration,
    /// How often idle workers look at the queue (new local runs wake them at once).
    pub poll: Duration,
    /// How long a received event id, and a manual run's idempotency key,
    /// is remembered (repeats within it run once).
    pub event_dedup_window: Duration,
    /// Backoff before the first retry; doubled for each further attempt.
    pub retry_base: Duration,
    /// Most runs of one script running at once (across the cluster).
    pub per_script_concurrency: i64,
    /// Most of this node's workers one user's runs take at once; `None`:
    /// half of them (at least one), so that one user's long runs always
    /// leave workers for the others.
    pub per_user_workers: Option<usize>,
    /// Most requests one user keeps waiting on runs (`?wait`) at this node.
    pub per_user_waits: usize,
    /// Finished runs older than this are deleted.
    pub retention: Duration,
    /// A run whose worker died is re-queued (true) or marked failed (false).
    pub requeue_orphans: bool,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            // A worker is a slot for one run, not a thread: a run waiting on
            // a slow API or a sleep holds one and no CPU. Twice the cores
            // lets one user's runs (half the workers, see
            // `per_user_workers`) use every core, with as many slots left
            // for everyone else.
            workers: 2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            heartbeat: Duration::from_secs(2),
            stale_after: Duration::from_secs(30),
            poll: Duration::from_millis(250),
            event_dedup_window: Duration::from_secs(24 * 3600),
            retry_base: Duration::from_secs(2),
            per_script_concurrency: 4,
            per_user_workers: None,
            per_user_waits: 32,
            retention: Duration::from_secs(30 * 24 * 3600),
            requeue_orphans: true,
        }
    }
}

/// How long a claimed run may read as queued before its start is written
/// (see `Store::hold_run_starts`): far below any heartbeat period, and
/// longer than a short script's whole run, even on a busy queue.
const HELD_START_WINDOW: Duration = Duration::from_millis(20);

/// Most runs a worker is handed at once while the queue is busy: it runs
/// them one after another and reports them in one trip to the store, where
/// the store can hold their starts (see `Store::report_and_claim`).
const RUNS_PER_TRIP: usize = 8;

/// How long a worker keeps outcomes unwritten, and how long a run may hold
/// up the runs handed to the worker after it: past this, the outcomes are
/// written and those runs go back to the queue for other workers. Short
/// next to a run's latency target (5 ms), long next to a short run.
const REPORT_WITHIN: Duration = Duration::from_millis(2);

/// Enqueues runs and runs the workers.
pub struct Runner {
    store: Arc<dyn Store>,
    executor: Arc<Executor>,
    config: RunnerConfig,
    wake: Arc<Notify>,
    node_id: String,
    metrics: Arc<Metrics>,
    /// Scripts' settings by version.
    settings: settings_cache::SettingsCache,
    /// Ids of runs that just ended (here, or announced by the store), so a
    /// waiting request answers at once.
    finished: tokio::sync::broadcast::Sender<String>,
    /// This node's workers by the user whose run each runs.
    workers_by_user: Arc<user_slots::UserSlots>,
    /// Requests waiting on runs (`?wait`), by user.
    waits_by_user: Arc<user_slots::UserSlots>,
}

impl Runner {
    /// A runner over `store`.
    pub fn new(
        store: Arc<dyn Store>,
        executor: Arc<Executor>,
        config: RunnerConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        // A run that ends within this window of its claim has its start
        // written with its end, where the store can (SQLite): one status
        // change instead of two on the busy queue's path. Not when orphans
        // are failed: a run held so would be queued again after a crash.
        if config.requeue_orphans {
            store.hold_run_starts(HELD_START_WINDOW);
        }
        let node_id = format!("node_{}", hex::encode(rand::random::<[u8; 6]>()));
        let per_user_workers = config.per_user_workers.unwrap_or(config.workers / 2).max(1);
        Self {
            workers_by_user: user_slots::UserSlots::new(per_user_workers),
            waits_by_user: user_slots::UserSlots::new(config.per_user_waits),
            store,
            executor,
            config,
            wake: Arc::new(Notify::new()),
            node_id,
            metrics,
            settings: Default::default(),
            finished: tokio::sync::broadcast::channel(1024).0,
        }
    }

    /// This node's id; its workers are `<node id>-w<n>`.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// This node's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Queues a run and wakes a worker.
    pub async fn enqueue(&self, run: &NewRun) -> StoreResult<RunRow> {
        let row = self.store.enqueue_run(run).await?;
        tracing::info!(run_id = %row.id, script = %row.script_id, trigger = %row.trigger_kind, "run queued");
        self.wake.notify_one();
        Ok(row)
    }

    /// Queues a manual run, refused while the user's queue is full
    /// (`limits`). Under an idempotency `key`, a repeat within the window
    /// queues nothing and names the first request's run (full queue or not).
    pub async fn enqueue_manual(
        &self,
        run: &NewRun,
        key: Option<&IdempotencyKey>,
        limits: QueueLimits,
    ) -> StoreResult<Enqueued> {
        let incoming = run.payload.to_string().len() as i64;
        let Some(key) = key else {
            crate::store::check_queue_room(self.store.as_ref(), &run.user_id, limits, incoming)
                .await?;
            return Ok(Enqueued::New(Box::new(self.enqueue(run).await?)));
        };
        let window = i64::try_from(self.config.event_dedup_window.as_millis()).unwrap_or(i64::MAX);
        let since = now_millis().saturating_sub(window);
        if let Some(repeat) = self.store.idempotent_run(&run.user_id, key, since).await? {
            return Ok(repeat);
        }
        crate::store::check_queue_room(self.store.as_ref(), &run.user_id, limits, incoming).await?;
        let enqueued = self.store.enqueue_run_once(run, key, since).await?;
        if let Enqueued::New(row) = &enqueued {
            tracing::info!(run_id = %row.id, script = %row.script_id, trigger = %row.trigger_kind, "run queued");
            self.wake.notify_one();
        }
        Ok(enqueued)
    }

    /// Wakes the workers (after runs were queued by other means, such as events).
    pub fn wake(&self) {
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Starts the workers and the reaper; they stop when `stop` turns true,
    /// after finishing the run in hand.
    pub fn start(
        self: &Arc<Self>,
        stop: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        // Zero workers makes a node that serves the API and queues runs only.
        for n in 0..self.config.workers {
            let runner = self.clone();
            let stop = stop.clone();
            handles.push(tokio::spawn(async move {
                runner.work(format!("{}-w{n}", runner.node_id), stop).await
            }));
        }
        let runner = self.clone();
        let reaper_stop = stop.clone();
        handles.push(tokio::spawn(async move { runner.reap(reaper_stop).await }));
        let runner = self.clone();
        handles.push(tokio::spawn(
            async move { runner.relay_run_ends(stop).await },
        ));
        handles
    }

    async fn work(&self, worker_id: String, mut stop: watch::Receiver<bool>) {
        let mut hand = InHand::new(worker_id);
        loop {
            if let Some(run) = hand.unstarted.pop_front() {
                let Some(seat) = self.workers_by_user.take(&run.user_id) else {
                    // Other workers took the user's last places since the
                    // claim: the run waits for one, in the queue.
                    hand.unstarted.push_front(run);
                    self.report(&mut hand, true, None).await;
                    continue;
                };
                self.run_one(&mut hand, run).await;
                drop(seat);
                // A node told to stop takes no new runs, and gives back
                // those it has not begun.
                let stopping = *stop.borrow();
                if hand.unstarted.is_empty() || stopping {
                    let next = (!stopping).then(|| self.next_claim());
                    self.report(&mut hand, true, next).await;
                } else if hand.overdue() {
                    self.report(&mut hand, false, None).await;
                }
                continue;
            }
            if *stop.borrow() {
                return;
            }
            match self
                .store
                .claim_run(
                    &hand.worker_id,
                    self.config.per_script_concurrency,
                    &self.workers_by_user.full(),
                )
                .await
            {
                Ok(Some(run)) => hand.unstarted.push_back(run),
                Ok(None) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "claiming a run failed; retrying");
                    tokio::time::sleep(self.config.poll).await;
                }
            }
        }
    }

    /// What a worker asks for with its reports: up to `RUNS_PER_TRIP` runs,
    /// its share of the queue.
    fn next_claim(&self) -> NextClaim {
        NextClaim {
            per_script_limit: self.config.per_script_concurrency,
            runs: RUNS_PER_TRIP,
            workers: self.config.workers,
            skip_users: self.workers_by_user.full(),
        }
    }

    /// Runs a run handed to the worker; its outcome joins the worker's
    /// unreported ones.
    async fn run_one(&self, hand: &mut InHand, run: RunRow) {
        let ready_at = run.not_before.unwrap_or(run.queued_at).max(run.queued_at);
        let started_at = now_millis();
        self.metrics
            .trigger_lag
            .observe((started_at - ready_at) as f64 / 1000.0);
        self.metrics
            .running
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.run_claimed(hand, run, started_at).await;
        self.metrics
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    async fn run_claimed(&self, hand: &mut InHand, run: RunRow, started_at: i64) {
        let span = tracing::info_span!("run", run_id = %run.id, script = %run.script_id, version = run.script_version);
        tracing::info!(parent: &span, worker = %hand.worker_id, attempt = run.attempt, "run started");
        // Run the script, heart-beating meanwhile. A heartbeat that finds the
        // run no longer ours (cancelled) drops the execution, which stops the
        // guest at its next epoch check.
        // One read of the script's limits and retry policy serves the whole run.
        let settings = self
            .settings
            .get(self.store.as_ref(), &run.script_id, run.script_version)
            .await;
        let execution = self.executor.execute(&run, settings.as_ref());
        tokio::pin!(execution);
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
        let report_by = hand.oldest.unwrap_or(last_beat) + REPORT_WITHIN;
        let finish = loop {
            tokio::select! {
                finish = &mut execution => break finish,
                _ = tokio::time::sleep_until(report_by), if hand.waiting() => {
                    self.report(hand, true, None).await;
                }
                _ = beat.tick() => match self.store.heartbeat_run(&run.id, &hand.worker_id).await {
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
            }
        };
        self.metrics
            .run_duration
            .observe(finish.duration_ms as f64 / 1000.0);
        let retry = self.retry_plan(&run, finish.status, settings.as_ref());
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

    /// Writes the worker's finished runs, gives back (with `give_back`) the
    /// runs it has not begun, and takes its next runs (given `next`).
    async fn report(&self, hand: &mut InHand, give_back: bool, next: Option<NextClaim>) {
        let unstarted: Vec<String> = match give_back {
            true => hand.unstarted.drain(..).map(|run| run.id).collect(),
            false => Vec::new(),
        };
        let (reports, logs) = hand.take_finished();
        if reports.is_empty() && unstarted.is_empty() && next.is_none() {
            return;
        }
        match self
            .store
            .report_and_claim(&hand.worker_id, reports, unstarted, next)
            .await
        {
            Ok(reported) => {
                for (log, recorded) in logs.into_iter().zip(reported.recorded) {
                    log.recorded(recorded, &self.finished);
                }
                hand.unstarted.extend(reported.next);
            }
            Err(err) => {
                for log in logs {
                    tracing::error!(parent: &log.span, error = %err, "recording the run's outcome failed");
                }
            }
        }
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
        tracing::info!(run_id = %run.id, attempt = run.attempt + 1, delay_ms, "run failed; retry queued");
        Some(RetryPlan {
            attempt: run.attempt + 1,
            first_run_id: run.first_run_id.clone().unwrap_or_else(|| run.id.clone()),
            not_before: now_millis() + delay_ms,
        })
    }

    async fn reap(&self, mut stop: watch::Receiver<bool>) {
        // Purging scans whole tables while holding SQLite's write lock, and
        // nothing is late if it happens once a minute instead of every few
        // seconds: a run's retention is counted in days. A short retention
        // or idempotency window (tests) is honoured at half its length.
        let purge_every = Duration::from_secs(60)
            .min(self.config.retention / 2)
            .min(self.config.event_dedup_window / 2);
        let mut last_purge: Option<tokio::time::Instant> = None;
        loop {
            let stale_before = now_millis()
                - i64::try_from(self.config.stale_after.as_millis()).unwrap_or(i64::MAX);
            match self
                .store
                .requeue_stale_runs(stale_before, self.config.requeue_orphans)
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    let what = if self.config.requeue_orphans {
                        "re-queued"
                    } else {
                        "failed"
                    };
                    tracing::warn!(count = n, "{what} runs whose worker stopped heart-beating");
                    self.wake.notify_waiters();
                }
                Err(err) => tracing::error!(error = %err, "re-queuing stale runs failed"),
            }
            if last_purge.is_some_and(|at| at.elapsed() < purge_every) {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.heartbeat * 2) => continue,
                    _ = stop.changed() => return,
                }
            }
            last_purge = Some(tokio::time::Instant::now());
            let forget_before = now_millis()
                - i64::try_from(self.config.event_dedup_window.as_millis()).unwrap_or(i64::MAX);
            if let Err(err) = self.store.purge_events(forget_before).await {
                tracing::error!(error = %err, "purging old events failed");
            }
            if let Err(err) = self.store.purge_idempotency_keys(forget_before).await {
                tracing::error!(error = %err, "purging old idempotency keys failed");
            }
            let retain_after =
                now_millis() - i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX);
            match self.store.delete_old_runs(retain_after).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "deleted runs past the retention period"),
                Err(err) => tracing::error!(error = %err, "deleting old runs failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.heartbeat * 2) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// A worker's runs in hand: handed to it and not begun, in order, and
/// finished but not yet written.
struct InHand {
    worker_id: String,
    unstarted: VecDeque<RunRow>,
    finished: Vec<RunReport>,
    logs: Vec<FinishLog>,
    /// When the oldest unwritten outcome came.
    oldest: Option<tokio::time::Instant>,
}

impl InHand {
    fn new(worker_id: String) -> Self {
        Self {
            worker_id,
            unstarted: VecDeque::new(),
            finished: Vec::new(),
            logs: Vec::new(),
            oldest: None,
        }
    }

    fn finished(&mut self, report: RunReport, span: tracing::Span) {
        self.oldest.get_or_insert_with(tokio::time::Instant::now);
        self.logs.push(FinishLog {
            run_id: report.run_id.clone(),
            status: report.finish.status,
            duration_ms: report.finish.duration_ms,
            has_error: report.finish.error.is_some(),
            span,
        });
        self.finished.push(report);
    }

    fn take_finished(&mut self) -> (Vec<RunReport>, Vec<FinishLog>) {
        self.oldest = None;
        (
            std::mem::take(&mut self.finished),
            std::mem::take(&mut self.logs),
        )
    }

    /// Whether anything waits on the run being run: outcomes to write, or
    /// runs to begin.
    fn waiting(&self) -> bool {
        !self.finished.is_empty() || !self.unstarted.is_empty()
    }

    /// Whether the oldest unwritten outcome has waited too long.
    fn overdue(&self) -> bool {
        self.oldest.is_some_and(|at| at.elapsed() >= REPORT_WITHIN)
    }
}

/// What is logged of a run once its outcome is written.
struct FinishLog {
    run_id: String,
    status: RunStatus,
    duration_ms: i64,
    has_error: bool,
    span: tracing::Span,
}

impl FinishLog {
    fn recorded(self, recorded: bool, finished: &tokio::sync::broadcast::Sender<String>) {
        if recorded {
            // The error stays on the run (GET /v1/runs/{id}): it can hold
            // what a script chose (a host it was denied, in any spelling)
            // and the setup link to reconnect with.
            tracing::info!(
                parent: &self.span,
                status = %self.status,
                duration_ms = self.duration_ms,
                has_error = self.has_error,
                "run finished"
            );
            let _ = finished.send(self.run_id);
        } else {
            tracing::info!(parent: &self.span, "run ended after it was cancelled; outcome dropped")
        }
    }
}
