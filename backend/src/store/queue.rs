//! The run queue: how runs are queued from events, claimed by workers,
//! kept alive and finished. Each engine has its own implementation
//! (sqlite/queue.rs batches through a writer thread; postgres/queue.rs
//! claims with row locks), over the statements below, which both run.

use async_trait::async_trait;

use super::{
    EventIngest, NewEvent, NextClaim, QueueLimits, Reported, RetryPlan, RunFinish, RunReport,
    RunRow, RunStatus, StartedRun, StoreResult,
};

/// The queue's side of the store.
#[async_trait]
pub trait RunQueue: Send + Sync {
    /// Records an event and queues one run per subscribed handler of the
    /// user's scripts, in one transaction; a repeated event id queues nothing.
    async fn ingest_event(&self, event: &NewEvent) -> StoreResult<EventIngest>;
    /// `ingest_event`, refused with [`super::StoreError::QueueFull`] while
    /// the user has `limits.runs` runs or more queued, and with
    /// [`super::StoreError::PayloadQuotaFull`] if the runs' payloads would
    /// pass `limits.payload_bytes`. A repeated event id is answered as a
    /// repeat, full queue or not. The check and the ingest are one
    /// transaction; on PostgreSQL, events arriving together at different
    /// nodes may pass the caps by a few.
    async fn ingest_event_within(
        &self,
        event: &NewEvent,
        limits: QueueLimits,
    ) -> StoreResult<EventIngest>;
    /// Claims the oldest claimable queued run for `worker_id`: never the same
    /// run for two workers, never a retry before its backoff, never a run of
    /// a script that already has `per_script_limit` runs running, never a
    /// run of a user in `skip_users`.
    async fn claim_run(
        &self,
        worker_id: &str,
        per_script_limit: i64,
        skip_users: &[String],
    ) -> StoreResult<Option<RunRow>>;
    /// What other nodes sharing the store announce (PostgreSQL's
    /// LISTEN/NOTIFY): the ends of runs someone may wait on, and runs
    /// queued for any worker; `None` where a node's own are all there is
    /// (SQLite). A request waiting on a run (`?wait`) answers on the ends;
    /// idle workers wake on the queued runs instead of their next poll.
    async fn queue_notices(
        &self,
    ) -> StoreResult<Option<futures_util::stream::BoxStream<'static, QueueNotice>>>;
    /// Records that `worker_id` still works on the run; false when the run
    /// is no longer this worker's to run (cancelled, or re-queued).
    async fn heartbeat_run(&self, run_id: &str, worker_id: &str) -> StoreResult<bool>;
    /// Stores what a running run has printed so far (masked by its
    /// worker), while it is still running under `worker_id`, fenced as
    /// `heartbeat_run` is; false, and nothing written, otherwise.
    /// `finish_run` later overwrites it with the run's whole output.
    async fn write_partial_output(
        &self,
        run_id: &str,
        worker_id: &str,
        output: &PartialOutput,
    ) -> StoreResult<bool>;
    /// Records how a running run ended and, in the same transaction, writes
    /// its effects (`finish.effects`) and queues `retry` if the run is
    /// recorded as anything but a success; false if it was no longer
    /// running under `worker_id` (cancelled, or re-queued after its
    /// heartbeat went stale and claimed by another worker), in which case
    /// nothing changes. A success whose state writes are refused (a
    /// `compare_and_set` overtaken, the quota passed) is recorded as a
    /// failure, with none of its effects.
    async fn finish_run(
        &self,
        run_id: &str,
        worker_id: &str,
        finish: &RunFinish,
        retry: Option<&RetryPlan>,
    ) -> StoreResult<bool>;
    /// Records a run begun outside the queue (see [`StartedRun`]) as
    /// running under its worker: from now on it heart-beats, counts
    /// against its script's cap and is re-queued if its node dies, as a
    /// claimed run is. `finish_run` records its end.
    async fn record_started(&self, run: &StartedRun) -> StoreResult<()>;
    /// Records a run begun outside the queue and already ended, in one
    /// transaction: inserted as running under its worker, then finished
    /// as `finish_run` finishes a run (its effects, or a failure if its
    /// state writes are refused). Never retried: its caller was answered.
    /// Answers with the status recorded.
    async fn record_ended(&self, run: &StartedRun, finish: &RunFinish) -> StoreResult<RunStatus>;
    /// A worker's trip to the store: records how each of `reports` ended,
    /// in order, as `finish_run` does; gives back `unstarted`, runs it was
    /// handed and did not begin (they are claimable again at once); and,
    /// given `claim`, hands it the runs to run next, one after another.
    /// Runs are handed out several at a time only once `hold_run_starts`
    /// was given a window: a run that waits in a worker's hands must not
    /// be failed as an orphan if the node dies. SQLite holds their starts
    /// (they read as queued); PostgreSQL writes them at the claim (they
    /// read as running, and each run's start is corrected with its end).
    /// Elsewhere at most one. Reports and give-backs stand even if the
    /// claim fails; the claim then hands out nothing.
    async fn report_and_claim(
        &self,
        worker_id: &str,
        reports: Vec<RunReport>,
        unstarted: Vec<String>,
        claim: Option<NextClaim>,
    ) -> StoreResult<Reported>;
    /// Lets the store write the start of a run that `report_and_claim`
    /// hands out together with that run's end, if the run ends within
    /// `window` (one write instead of two for short runs). Until then, or
    /// until its first heartbeat, the run reads as still queued; if the
    /// server dies meanwhile it stays queued and runs again. Only for a
    /// server that re-queues orphaned runs. `Duration::ZERO` (the default)
    /// writes every start at its claim. SQLite does it; PostgreSQL ignores
    /// it (a cluster's nodes must see every claim), but takes a window as
    /// leave to hand a worker several runs at once.
    fn hold_run_starts(&self, window: std::time::Duration);
}

/// What another node sharing the store announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueNotice {
    /// This run, which someone may be waiting on, ended.
    RunEnded(String),
    /// Runs were queued.
    RunsQueued,
}

/// What a running run has printed so far, masked: stored on its row while
/// it runs, so its output can be followed from any node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialOutput {
    /// stdout so far.
    pub stdout: Vec<u8>,
    /// stderr so far.
    pub stderr: Vec<u8>,
    /// Whether stdout already hit the cap.
    pub stdout_truncated: bool,
    /// Whether stderr already hit the cap.
    pub stderr_truncated: bool,
    /// The output cap in force, per stream.
    pub output_cap: i64,
}

/// Stores run `$6`'s output so far, if it is still running under worker
/// `$7` (`$1` stdout, `$2` stderr, `$3`/`$4` truncated, `$5` the cap).
pub(super) const PARTIAL_OUTPUT_SQL: &str = "UPDATE runs SET stdout = $1, stderr = $2, stdout_truncated = $3, \
     stderr_truncated = $4, output_cap = $5 WHERE id = $6 AND worker_id = $7 AND status = 'running'";

/// Records how a running run ended, if it is still `$12`'s.
pub(super) const FINISH_RUN_SQL: &str = "UPDATE runs SET status = $1, exit_code = $2, duration_ms = $3, error = $4, \
     stdout = $5, stderr = $6, stdout_truncated = $7, stderr_truncated = $8, output_cap = $9, finished_at = $10 \
     WHERE id = $11 AND status = 'running' AND worker_id = $12";

/// Inserts a run begun outside the queue as running: `$1` id, `$2` user,
/// `$3` script, `$4` version, `$5` handler, `$6` trigger kind, `$7`
/// trigger spec, `$8` payload, `$9` when it began, `$10` its worker, `$11`
/// now (its heartbeat).
pub(super) const INSERT_STARTED_RUN_SQL: &str = "INSERT INTO runs (id, user_id, script_id, script_version, handler, \
     trigger_kind, trigger_spec, payload, status, attempt, queued_at, started_at, heartbeat_at, worker_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', 1, $9, $9, $11, $10)";

/// Stores an outbox message a run left: `$1` id, `$2` user, `$3` script,
/// `$4` run, `$5` channel, `$6` recipient, `$7` subject, `$8` body, `$9`
/// when the script sent it. Written only with the run's end.
pub(super) const INSERT_MESSAGE_SQL: &str = "INSERT INTO messages (id, user_id, script_id, run_id, channel, recipient, \
     subject, body, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Records what HTTP-triggered run `$1` answered.
pub(super) const INSERT_HTTP_RESPONSE_SQL: &str =
    "INSERT INTO run_http_responses (run_id, status, headers, body) VALUES ($1, $2, $3, $4)";

/// Records that worker `$3` still runs run `$2`, at `$1`.
pub(super) const HEARTBEAT_SQL: &str =
    "UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND worker_id = $3 AND status = 'running'";

/// Puts run `$1`, handed to worker `$2` and not begun, back on the queue
/// as it was (a held start needs no write: it is still queued). A debounced
/// run comes back without its key: a newer run of the key may wait already.
pub(super) const GIVE_BACK_RUN_SQL: &str = "UPDATE runs SET status = 'queued', worker_id = NULL, heartbeat_at = NULL, \
     started_at = NULL, flow_key = NULL WHERE id = $1 AND worker_id = $2 AND status = 'running'";

/// Queues the next attempt of run `$6`.
pub(super) const RETRY_RUN_SQL: &str = "INSERT INTO runs (id, user_id, script_id, script_version, handler, trigger_kind, \
     trigger_spec, payload, status, attempt, first_run_id, queued_at, not_before, cause_event_id, chain_depth, \
     concurrency_key, concurrency_limit, wait_reason) \
     SELECT $1, user_id, script_id, script_version, handler, trigger_kind, trigger_spec, payload, \
     'queued', $2, $3, $4, $5, cause_event_id, chain_depth, concurrency_key, concurrency_limit, 'retry' \
     FROM runs WHERE id = $6";

/// A run a run scheduled, queued with its end: `$1` id, `$2` user, `$3`
/// script, `$4` version, `$5` handler, `$6` trigger kind, `$7` trigger
/// spec, `$8` payload, `$9` now, `$10` not before, `$11` chain depth.
pub(super) const INSERT_SCHEDULED_RUN_SQL: &str = "INSERT INTO runs (id, user_id, script_id, script_version, handler, \
     trigger_kind, trigger_spec, payload, status, attempt, queued_at, not_before, chain_depth, wait_reason) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', 1, $9, $10, $11, CASE WHEN $10 > $9 THEN 'run_at' END)";

/// The runs an event id already made (`$1` user, `$2` event id).
pub(super) const EVENT_LOOKUP_SQL: &str =
    "SELECT run_ids FROM events WHERE user_id = $1 AND event_id = $2";

/// The handlers of user `$1`'s scripts subscribed to event type `$2`.
pub(super) const EVENT_SUBSCRIBERS_SQL: &str = "SELECT s.id AS script_id, s.current_version, t.handler, t.flow \
     FROM triggers t JOIN scripts s ON s.id = t.script_id \
     WHERE s.user_id = $1 AND t.kind = 'event' AND t.spec = $2 ORDER BY s.id, t.handler";

/// A queued run for one subscriber of an event: `$1` id, `$2` user, `$3`
/// script, `$4` version, `$5` handler, `$6` event type, `$7` payload, `$8`
/// now, `$9` the event's id, `$10` its chain depth.
pub(super) const INSERT_EVENT_RUN_SQL: &str = "INSERT INTO runs (id, user_id, script_id, script_version, handler, \
     trigger_kind, trigger_spec, payload, status, attempt, queued_at, cause_event_id, chain_depth) \
     VALUES ($1, $2, $3, $4, $5, 'event', $6, $7, 'queued', 1, $8, $9, $10)";

/// A debounced handler's run for an event: `INSERT_EVENT_RUN_SQL` with
/// `$11` its key and `$12` its time, or, when a run of that key waits in
/// the queue already, that run with this payload and time; its id.
pub(super) const UPSERT_DEBOUNCED_RUN_SQL: &str = "INSERT INTO runs (id, user_id, script_id, script_version, handler, \
     trigger_kind, trigger_spec, payload, status, attempt, queued_at, cause_event_id, chain_depth, flow_key, not_before, \
     wait_reason) VALUES ($1, $2, $3, $4, $5, 'event', $6, $7, 'queued', 1, $8, $9, $10, $11, $12, 'debounce') \
     ON CONFLICT (flow_key) WHERE status = 'queued' DO UPDATE SET payload = excluded.payload, \
     not_before = excluded.not_before, cause_event_id = excluded.cause_event_id, \
     chain_depth = excluded.chain_depth, script_version = excluded.script_version RETURNING id";

/// The time of the `$2 + 1`-th latest run of throttle key `$1`.
pub(super) const THROTTLE_SLOT_SQL: &str = "SELECT not_before FROM runs WHERE throttle_key = $1 ORDER BY not_before DESC LIMIT 1 OFFSET $2";

/// A throttled handler's run for an event: `INSERT_EVENT_RUN_SQL` with
/// `$11` its key and `$12` its time.
pub(super) const INSERT_THROTTLED_RUN_SQL: &str = "INSERT INTO runs (id, user_id, script_id, script_version, handler, \
     trigger_kind, trigger_spec, payload, status, attempt, queued_at, cause_event_id, chain_depth, throttle_key, \
     not_before, wait_reason) VALUES ($1, $2, $3, $4, $5, 'event', $6, $7, 'queued', 1, $8, $9, $10, $11, $12, \
     CASE WHEN $12 > $8 THEN 'throttle' END)";

/// Run `$3`, just queued, runs at most `$2` at a time with the other runs
/// of concurrency key `$1`; it is recorded as waiting for them when that
/// many are queued or running ahead of it (and it waited for nothing
/// else).
pub(super) const LIMIT_CONCURRENCY_SQL: &str = "UPDATE runs SET concurrency_key = $1, concurrency_limit = $2, \
     wait_reason = CASE WHEN wait_reason IS NULL AND (SELECT COUNT(*) FROM runs r WHERE r.concurrency_key = $1 \
     AND r.status IN ('queued', 'running') AND r.id <> $3) >= $2 THEN 'concurrency' ELSE wait_reason END \
     WHERE id = $3";

/// An event received: `$1` user, `$2` id, `$3` type, `$4` source, `$5` now,
/// `$6` the JSON list of the runs it made, `$7` the run that emitted it,
/// `$8` its chain depth, `$9` why it was stopped.
pub(super) const INSERT_EVENT_SQL: &str = "INSERT INTO events (user_id, event_id, event_type, source, received_at, run_ids, \
     source_run_id, chain_depth, stopped) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
