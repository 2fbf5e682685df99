//! Runs: the durable queue in the store, a pool of workers claiming from
//! it, heart-beating while they run, and a reaper that puts the runs of a
//! dead worker back on the queue.

mod due;
pub mod follow;
mod hand;
mod here;
mod history;
mod live_output;
mod reaper;
mod settings_cache;
pub(crate) mod user_slots;
mod waiting;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

pub use here::{HereEnd, HereSlot};
pub use history::{Cancelled, RunHistory};
pub use waiting::WaitSlot;

use crate::execute::Executor;
use crate::metrics::Metrics;
use crate::store::{
    Enqueued, IdempotencyKey, NewRun, QueueLimits, RunRow, Store, StoreResult, now_millis,
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
    /// How often a running run's output, if it grew, is written to its
    /// row (where GET /v1/runs/{id}/stream and /logs read it).
    pub output_flush: Duration,
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
    /// Most HTTP-triggered runs this node runs at once as their requests
    /// arrive, outside the queue and its workers (see queue/here.rs);
    /// further requests wait for a place, in order.
    pub http_runs: usize,
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
            output_flush: Duration::from_secs(1),
            poll: Duration::from_millis(250),
            event_dedup_window: Duration::from_secs(24 * 3600),
            retry_base: Duration::from_secs(2),
            per_script_concurrency: 4,
            per_user_workers: None,
            per_user_waits: 32,
            // Enough to keep every core busy while some runs wait on the
            // network, and far below the sandbox's instance pool (128).
            http_runs: 8 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            retention: Duration::from_secs(30 * 24 * 3600),
            requeue_orphans: true,
        }
    }
}

/// How long a claimed run may read as queued before its start is written
/// (see `RunQueue::hold_run_starts`): far below any heartbeat period, and
/// longer than a short script's whole run, even on a busy queue.
const HELD_START_WINDOW: Duration = Duration::from_millis(20);

/// Enqueues runs and runs the workers.
pub struct Runner {
    store: Arc<dyn Store>,
    executor: Arc<Executor>,
    config: RunnerConfig,
    wake: Arc<Notify>,
    /// Tells the watch on due runs (due.rs) that one was queued here.
    due_changed: Arc<Notify>,
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
    /// Places for runs begun here, outside the queue.
    here: here::HereGates,
    /// What the worker id of each run begun here starts with.
    here_worker_id: String,
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
            here: here::HereGates::new(
                config.http_runs,
                usize::try_from(config.per_script_concurrency).unwrap_or(1),
            ),
            here_worker_id: format!("{node_id}-here"),
            store,
            executor,
            config,
            wake: Arc::new(Notify::new()),
            due_changed: Arc::new(Notify::new()),
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

    /// Queues a run and wakes a worker (or, for a run at a time, the watch
    /// on due runs).
    pub async fn enqueue(&self, run: &NewRun) -> StoreResult<RunRow> {
        let span = crate::telemetry::trigger(run.trigger_kind.as_str(), &run.script_id);
        let row = self.store.enqueue_run(run).await?;
        crate::telemetry::bind(&span, &row.id);
        tracing::info!(run_id = %row.id, script = %row.script_id, trigger = %row.trigger_kind, not_before = ?row.not_before, "run queued");
        self.queued(&row);
        Ok(row)
    }

    fn queued(&self, row: &RunRow) {
        match row.not_before {
            Some(_) => self.due_changed(),
            None => self.wake.notify_one(),
        }
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
        let span = crate::telemetry::trigger(run.trigger_kind.as_str(), &run.script_id);
        let enqueued = self.store.enqueue_run_once(run, key, since).await?;
        if let Enqueued::New(row) = &enqueued {
            crate::telemetry::bind(&span, &row.id);
            tracing::info!(run_id = %row.id, script = %row.script_id, trigger = %row.trigger_kind, not_before = ?row.not_before, "run queued");
            self.queued(row);
        }
        Ok(enqueued)
    }

    /// Wakes the workers (after runs were queued by other means, such as
    /// events). Not the watch on due runs: on the event path that would be
    /// a query per event; it finds debounced and throttled turns at its
    /// next look.
    pub fn wake(&self) {
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Wakes one idle worker per run queued (`runs`), not all of them: a
    /// worker woken for nothing still asks the store, which on PostgreSQL
    /// is a transaction.
    pub fn wake_for(&self, runs: usize) {
        for _ in 0..runs {
            self.wake.notify_one();
        }
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
        let due_stop = stop.clone();
        handles.push(tokio::spawn(runner.wake_when_due(due_stop)));
        let runner = self.clone();
        handles.push(tokio::spawn(
            async move { runner.relay_notices(stop).await },
        ));
        handles
    }
}
