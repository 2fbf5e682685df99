//! What each of the SQLite writer's jobs runs inside its turn's
//! transaction (see group_commit.rs): an event turned into runs, a claim, a
//! heartbeat, a worker's reports and next runs. Each function writes through the turn's connection
//! and leaves committing, and rolling back, to the turn.

use std::sync::LazyLock;

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::QUEUE_DEPTH_SQL;
use super::claims::{Claimer, claim_runs};
use super::held_starts::HeldStarts;
use super::run_ends::{Ended, finish};
use crate::store::flow::flow_of;
use crate::store::queue::{
    EVENT_LOOKUP_SQL, EVENT_SUBSCRIBERS_SQL, FINISH_RUN_SQL, GIVE_BACK_RUN_SQL, HEARTBEAT_SQL,
    INSERT_EVENT_RUN_SQL, INSERT_EVENT_SQL, INSERT_HTTP_RESPONSE_SQL, INSERT_MESSAGE_SQL,
    INSERT_SCHEDULED_RUN_SQL, INSERT_STARTED_RUN_SQL, PARTIAL_OUTPUT_SQL, RETRY_RUN_SQL,
};
use crate::store::queue::{
    INSERT_THROTTLED_RUN_SQL, LIMIT_CONCURRENCY_SQL, THROTTLE_SLOT_SQL, UPSERT_DEBOUNCED_RUN_SQL,
};
use crate::store::rows::{RUN_COLUMNS, RunColumns};
use crate::store::{
    EventIngest, NewEvent, NextClaim, PartialOutput, QueueDepth, QueueLimits, Reported, RunReport,
    StoreError, StoreResult, new_id,
};

/// The writer's claim, step one: the queued runs past their backoff (`$1`,
/// now), oldest first, read until one is claimable (see `pick` in
/// group_commit.rs, which adds the runs it holds to each script's count).
const CLAIM_QUEUED_SQL: &str = "SELECT id, script_id, user_id, concurrency_key, concurrency_limit \
     FROM runs INDEXED BY runs_queued \
     WHERE status = 'queued' AND (not_before IS NULL OR not_before <= $1) ORDER BY queued_at, id";

/// Whether a user other than those in `$1` (a JSON array) has runs queued.
/// A claim that skips users asks first: otherwise it would read past every
/// queued run of theirs to find none.
const OTHERS_QUEUED_SQL: &str = "SELECT EXISTS (SELECT 1 FROM queue_depth WHERE queued > 0 \
     AND user_id NOT IN (SELECT value FROM json_each($1)))";

/// How many of script `$1`'s runs are running, for its concurrency cap.
const SCRIPT_RUNNING_SQL: &str = "SELECT COUNT(*) FROM runs INDEXED BY runs_running \
     WHERE script_id = $1 AND status = 'running'";

/// How many runs of concurrency key `$1` are running.
const KEY_RUNNING_SQL: &str = "SELECT COUNT(*) FROM runs INDEXED BY runs_concurrency \
     WHERE concurrency_key = $1 AND status = 'running'";

/// The writer's claim, step two: run `$3` is worker `$2`'s since `$1`,
/// heart-beaten at `$4` (a held start is written later than it began).
/// The pick and this update share the writer's transaction, which holds
/// SQLite's write lock, so nobody claims the run in between. (A single
/// `UPDATE … RETURNING` would do both, but SQLite gathers a RETURNING
/// statement's rows in a temporary b-tree it opens and closes on every
/// call, which a profile showed costly: docs/store-decisions.md.)
const START_RUN_SQL: &str = "UPDATE runs SET status = 'running', worker_id = $2, started_at = $1, heartbeat_at = $4 \
     WHERE id = $3 AND status = 'queued'";

/// A held run's end and its start in one change (see held_starts.rs):
/// `FINISH_RUN_SQL`'s `$1`-`$12`, and `$13` when it started. Nothing
/// changes if it was cancelled while held.
const FINISH_HELD_RUN_SQL: &str = "UPDATE runs SET status = $1, exit_code = $2, duration_ms = $3, error = $4, \
     stdout = $5, stderr = $6, stdout_truncated = $7, stderr_truncated = $8, output_cap = $9, finished_at = $10, \
     worker_id = $12, started_at = $13, heartbeat_at = $13 WHERE id = $11 AND status = 'queued'";

/// The SQL of the writer, with sqlx's `$N` placeholders written as SQLite's
/// `?N`: rusqlite binds by position, and SQLite numbers `$N` parameters in
/// the order they first appear, `?N` ones by their N.
pub(super) struct WriterSql {
    pub(super) event_lookup: String,
    pub(super) queue_depth: String,
    pub(super) event_subscribers: String,
    pub(super) insert_event_run: String,
    pub(super) insert_event: String,
    pub(super) claim_queued: String,
    pub(super) others_queued: String,
    pub(super) script_running: String,
    pub(super) start_run: String,
    pub(super) read_run: String,
    pub(super) finish_run: String,
    pub(super) finish_held: String,
    pub(super) heartbeat: String,
    pub(super) partial_output: String,
    pub(super) retry_run: String,
    pub(super) give_back: String,
    pub(super) insert_message: String,
    pub(super) insert_http_response: String,
    pub(super) insert_started_run: String,
    pub(super) insert_scheduled_run: String,
    pub(super) upsert_debounced_run: String,
    pub(super) debounced_waiting: String,
    pub(super) forget_flow_key: String,
    pub(super) throttle_slot: String,
    pub(super) insert_throttled_run: String,
    pub(super) limit_concurrency: String,
    pub(super) key_running: String,
}

pub(super) static SQL: LazyLock<WriterSql> = LazyLock::new(|| WriterSql {
    event_lookup: numbered(EVENT_LOOKUP_SQL),
    queue_depth: numbered(QUEUE_DEPTH_SQL),
    event_subscribers: numbered(EVENT_SUBSCRIBERS_SQL),
    insert_event_run: numbered(INSERT_EVENT_RUN_SQL),
    insert_event: numbered(INSERT_EVENT_SQL),
    claim_queued: numbered(CLAIM_QUEUED_SQL),
    others_queued: numbered(OTHERS_QUEUED_SQL),
    script_running: numbered(SCRIPT_RUNNING_SQL),
    start_run: numbered(START_RUN_SQL),
    read_run: format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
    finish_run: numbered(FINISH_RUN_SQL),
    finish_held: numbered(FINISH_HELD_RUN_SQL),
    heartbeat: numbered(HEARTBEAT_SQL),
    partial_output: numbered(PARTIAL_OUTPUT_SQL),
    retry_run: numbered(RETRY_RUN_SQL),
    give_back: numbered(GIVE_BACK_RUN_SQL),
    insert_message: numbered(INSERT_MESSAGE_SQL),
    insert_http_response: numbered(INSERT_HTTP_RESPONSE_SQL),
    insert_started_run: numbered(INSERT_STARTED_RUN_SQL),
    insert_scheduled_run: numbered(INSERT_SCHEDULED_RUN_SQL),
    upsert_debounced_run: numbered(UPSERT_DEBOUNCED_RUN_SQL),
    debounced_waiting: "SELECT id FROM runs WHERE flow_key = ?1 AND status = 'queued'".into(),
    forget_flow_key: "UPDATE runs SET flow_key = NULL WHERE id = ?1".into(),
    throttle_slot: numbered(THROTTLE_SLOT_SQL),
    insert_throttled_run: numbered(INSERT_THROTTLED_RUN_SQL),
    limit_concurrency: numbered(LIMIT_CONCURRENCY_SQL),
    key_running: numbered(KEY_RUNNING_SQL),
});

/// `sql` with every `$N` written `?N`. (None of the writer's statements
/// has a `$` followed by a digit inside a string literal.)
pub(super) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Turns an event into runs, once per event id: an id seen before (stored,
/// or earlier in this turn) queues nothing and answers with the first
/// event's runs. A new one is refused while the user has `limits.runs`
/// runs queued, or if its runs' payloads would pass `limits.payload_bytes`
/// (counted in this transaction, so events arriving together cannot pass
/// the caps).
pub(super) fn ingest(
    tx: &Connection,
    held: &HeldStarts,
    event: &NewEvent,
    limits: Option<QueueLimits>,
    now: i64,
) -> StoreResult<EventIngest> {
    let stored: Option<String> = tx
        .prepare_cached(&SQL.event_lookup)?
        .query_row(params![event.user_id, event.event_id], |row| row.get(0))
        .optional()?;
    if let Some(run_ids) = stored {
        let run_ids = serde_json::from_str(&run_ids)
            .map_err(|e| StoreError::Corrupt(format!("event run ids: {e}")))?;
        return Ok(EventIngest {
            duplicate: true,
            run_ids,
        });
    }
    let depth = match limits {
        Some(limits) => {
            let depth =
                tx.prepare_cached(&SQL.queue_depth)?
                    .query_row(params![event.user_id], |row| {
                        Ok(QueueDepth {
                            runs: row.get(0)?,
                            payload_bytes: row.get(1)?,
                        })
                    })?;
            limits.admit(depth, 0)?;
            Some((limits, depth))
        }
        None => None,
    };
    let subscribers = tx
        .prepare_cached(&SQL.event_subscribers)?
        .query_map(params![event.user_id, event.event_type], |row| {
            Ok((
                row.get::<_, String>("script_id")?,
                row.get::<_, i64>("current_version")?,
                row.get::<_, Option<String>>("handler")?,
                row.get::<_, Option<String>>("flow")?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let payload = event.payload.to_string();
    if let Some((limits, depth)) = depth {
        limits.admit(depth, subscribers.len() as i64 * payload.len() as i64)?;
    }
    let mut run_ids = Vec::with_capacity(subscribers.len());
    for (script_id, version, handler, flow) in subscribers {
        let name = handler.as_deref().unwrap_or_default();
        let flow = flow_of(flow.as_deref(), &script_id, name, &event.payload, now)?;
        let id = new_id("run");
        // The ten parameters every event run takes (INSERT_EVENT_RUN_SQL).
        let common: [&dyn ToSql; 10] = [
            &id,
            &event.user_id,
            &script_id,
            &version,
            &handler,
            &event.event_type,
            &payload,
            &now,
            &event.event_id,
            &event.chain_depth,
        ];
        let queued = if let Some(throttled) = flow.throttled {
            let earlier: Option<i64> = tx
                .prepare_cached(&SQL.throttle_slot)?
                .query_row(
                    params![throttled.throttle_key, throttled.limit.saturating_sub(1)],
                    |row| row.get(0),
                )
                .optional()?;
            // Dropped: a run that would have to wait is not queued.
            let Some(slot) = throttled.slot(earlier, now) else {
                continue;
            };
            tx.prepare_cached(&SQL.insert_throttled_run)?
                .execute(params_from_iter(
                    common
                        .into_iter()
                        .chain([&throttled.throttle_key as &dyn ToSql, &slot]),
                ))?;
            id
        } else if let Some(debounced) = flow.debounced {
            // A run of the key handed to a worker whose start is not yet
            // written (held) is no longer waiting: it keeps its payload,
            // and this event makes the next run.
            let waiting: Option<String> = tx
                .prepare_cached(&SQL.debounced_waiting)?
                .query_row(params![debounced.flow_key], |row| row.get(0))
                .optional()?;
            if let Some(waiting) = waiting.filter(|id| held.holds(id)) {
                tx.prepare_cached(&SQL.forget_flow_key)?
                    .execute(params![waiting])?;
            }
            tx.prepare_cached(&SQL.upsert_debounced_run)?.query_row(
                params_from_iter(
                    common
                        .into_iter()
                        .chain([&debounced.flow_key as &dyn ToSql, &debounced.not_before]),
                ),
                |row| row.get(0),
            )?
        } else {
            tx.prepare_cached(&SQL.insert_event_run)?
                .execute(params_from_iter(common))?;
            id
        };
        if let Some(limited) = flow.limited {
            tx.prepare_cached(&SQL.limit_concurrency)?.execute(params![
                limited.concurrency_key,
                limited.limit,
                queued
            ])?;
        }
        run_ids.push(queued);
    }
    insert_event(tx, event, &run_ids, None, now)?;
    Ok(EventIngest {
        duplicate: false,
        run_ids,
    })
}

/// Records `event` with the runs it made, or, `stopped`, with why it made
/// none.
pub(super) fn insert_event(
    tx: &Connection,
    event: &NewEvent,
    run_ids: &[String],
    stopped: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    tx.prepare_cached(&SQL.insert_event)?.execute(params![
        event.user_id,
        event.event_id,
        event.event_type,
        event.source,
        now,
        serde_json::to_string(run_ids).expect("ids serialise"),
        event.source_run_id,
        event.chain_depth,
        stopped
    ])?;
    Ok(())
}

/// Records that the worker still runs the run; a held run gets its start
/// written. False if the run is not this worker's (cancelled, re-queued).
pub(super) fn heartbeat(
    tx: &Connection,
    held: &mut HeldStarts,
    run_id: &str,
    worker_id: &str,
    now: i64,
) -> StoreResult<bool> {
    let changed = match held.release(run_id, worker_id) {
        Some(run) => tx.prepare_cached(&SQL.start_run)?.execute(params![
            run.started_at,
            worker_id,
            run_id,
            now
        ])?,
        None => tx
            .prepare_cached(&SQL.heartbeat)?
            .execute(params![now, run_id, worker_id])?,
    };
    Ok(changed > 0)
}

/// Stores a running run's output so far; a held run gets its start
/// written first, as a heartbeat writes it. False if the run is not this
/// worker's.
pub(super) fn partial_output(
    tx: &Connection,
    held: &mut HeldStarts,
    run_id: &str,
    worker_id: &str,
    output: &PartialOutput,
    now: i64,
) -> StoreResult<bool> {
    if let Some(run) = held.release(run_id, worker_id) {
        tx.prepare_cached(&SQL.start_run)?.execute(params![
            run.started_at,
            worker_id,
            run_id,
            now
        ])?;
    }
    let changed = tx.prepare_cached(&SQL.partial_output)?.execute(params![
        output.stdout,
        output.stderr,
        i64::from(output.stdout_truncated),
        i64::from(output.stderr_truncated),
        output.output_cap,
        run_id,
        worker_id
    ])?;
    Ok(changed > 0)
}

/// A worker's trip: records each report (see `finish`), gives back the
/// runs it did not begin, and claims its next runs. (The finished runs no
/// longer count against their script's cap; a run the worker lost still
/// does.)
pub(super) fn report(
    tx: &Connection,
    held: &mut HeldStarts,
    claimer: &Claimer<'_>,
    reports: &[RunReport],
    unstarted: &[String],
    claim: Option<NextClaim>,
) -> StoreResult<Reported> {
    let mut reported = Reported::default();
    for report in reports {
        let ended = Ended {
            run_id: &report.run_id,
            finish: &report.finish,
            retry: report.retry.as_ref(),
            started_at: report.started_at,
        };
        reported
            .recorded
            .push(finish(tx, held, claimer, ended)?.is_some());
    }
    for run_id in unstarted {
        // A held run is still queued: letting go of it is enough.
        if held.release(run_id, claimer.worker_id).is_none() {
            tx.prepare_cached(&SQL.give_back)?
                .execute(params![run_id, claimer.worker_id])?;
        }
    }
    // The reports stand even if the claim after them fails (the store's
    // contract): otherwise their runs would stay `running` and be run again
    // once their heartbeat went stale. A failed statement is undone on its
    // own; only if SQLite gave up the whole transaction does the job fail.
    if let Some(wanted) = claim {
        match claim_runs(tx, held, claimer, wanted) {
            Ok(next) => reported.next = next,
            Err(err) if !tx.is_autocommit() => {
                tracing::warn!(error = %err, "claiming the next runs after a report failed");
            }
            Err(err) => return Err(err),
        }
    }
    Ok(reported)
}

/// A run row's columns, read by position where the statement lists them
/// as `RUN_COLUMNS` does (the writer's rows all do) and by name otherwise.
/// rusqlite finds a column by name by asking SQLite for every column's
/// name in turn, which a profile showed costly (docs/store-decisions.md).
impl RunColumns for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> StoreResult<String> {
        Ok(self.get(run_column(self, column)?)?)
    }
    fn maybe_text(&self, column: &str) -> StoreResult<Option<String>> {
        Ok(self.get(run_column(self, column)?)?)
    }
    fn int(&self, column: &str) -> StoreResult<i64> {
        Ok(self.get(run_column(self, column)?)?)
    }
    fn maybe_int(&self, column: &str) -> StoreResult<Option<i64>> {
        Ok(self.get(run_column(self, column)?)?)
    }
}

/// `RUN_COLUMNS`, one name each, in order.
static RUN_COLUMN_NAMES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| RUN_COLUMNS.split(',').map(str::trim).collect());

/// Where `column` is in `row`: its place in `RUN_COLUMNS` if the row's
/// statement has it there (one name compared), else a search by name.
fn run_column(row: &rusqlite::Row<'_>, column: &str) -> rusqlite::Result<usize> {
    let statement = row.as_ref();
    match RUN_COLUMN_NAMES.iter().position(|name| *name == column) {
        Some(at) if statement.column_name(at).is_ok_and(|name| name == column) => Ok(at),
        _ => statement.column_index(column),
    }
}
