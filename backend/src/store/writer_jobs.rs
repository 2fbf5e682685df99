//! What each of the SQLite writer's jobs runs inside its turn's
//! transaction (see group_commit.rs): an event turned into runs, a claim, a
//! heartbeat, a finish. Each function writes through the turn's connection
//! and leaves committing, and rolling back, to the turn.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use super::held_starts::{Held, HeldStarts};
use super::sql::{
    EVENT_LOOKUP_SQL, EVENT_SUBSCRIBERS_SQL, FINISH_RUN_SQL, HEARTBEAT_SQL, INSERT_EVENT_RUN_SQL,
    INSERT_EVENT_SQL, RETRY_RUN_SQL, RUN_COLUMNS, RunColumns, new_id, run_from_row,
};
use super::sqlite::{
    CLAIM_QUEUED_SQL, FINISH_HELD_RUN_SQL, QUEUE_DEPTH_SQL, SCRIPT_RUNNING_SQL, START_RUN_SQL,
};
use super::{EventIngest, NewEvent, RetryPlan, RunFinish, RunRow, StoreError, StoreResult};

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
    pub(super) script_running: String,
    pub(super) start_run: String,
    pub(super) read_run: String,
    pub(super) finish_run: String,
    pub(super) finish_held: String,
    pub(super) heartbeat: String,
    pub(super) retry_run: String,
}

pub(super) static SQL: LazyLock<WriterSql> = LazyLock::new(|| WriterSql {
    event_lookup: numbered(EVENT_LOOKUP_SQL),
    queue_depth: numbered(QUEUE_DEPTH_SQL),
    event_subscribers: numbered(EVENT_SUBSCRIBERS_SQL),
    insert_event_run: numbered(INSERT_EVENT_RUN_SQL),
    insert_event: numbered(INSERT_EVENT_SQL),
    claim_queued: numbered(CLAIM_QUEUED_SQL),
    script_running: numbered(SCRIPT_RUNNING_SQL),
    start_run: numbered(START_RUN_SQL),
    read_run: format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
    finish_run: numbered(FINISH_RUN_SQL),
    finish_held: numbered(FINISH_HELD_RUN_SQL),
    heartbeat: numbered(HEARTBEAT_SQL),
    retry_run: numbered(RETRY_RUN_SQL),
});

/// `sql` with every `$N` written `?N`. (None of the writer's statements
/// has a `$` followed by a digit inside a string literal.)
fn numbered(sql: &str) -> String {
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
/// event's runs. A new one is refused while the user has `max_queued` runs
/// queued (counted in this transaction, so events arriving together cannot
/// pass the cap).
pub(super) fn ingest(
    tx: &Connection,
    event: &NewEvent,
    max_queued: Option<i64>,
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
    if let Some(max_queued) = max_queued {
        let queued: i64 = tx
            .prepare_cached(&SQL.queue_depth)?
            .query_row(params![event.user_id], |row| row.get(0))?;
        if queued >= max_queued {
            return Err(StoreError::QueueFull { queued });
        }
    }
    let subscribers = tx
        .prepare_cached(&SQL.event_subscribers)?
        .query_map(params![event.user_id, event.event_type], |row| {
            Ok((
                row.get::<_, String>("script_id")?,
                row.get::<_, i64>("current_version")?,
                row.get::<_, Option<String>>("handler")?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let payload = event.payload.to_string();
    let mut insert_run = tx.prepare_cached(&SQL.insert_event_run)?;
    let mut run_ids = Vec::with_capacity(subscribers.len());
    for (script_id, version, handler) in subscribers {
        let id = new_id("run");
        insert_run.execute(params![
            id,
            event.user_id,
            script_id,
            version,
            handler,
            event.event_type,
            payload,
            now
        ])?;
        run_ids.push(id);
    }
    tx.prepare_cached(&SQL.insert_event)?.execute(params![
        event.user_id,
        event.event_id,
        event.event_type,
        event.source,
        now,
        serde_json::to_string(&run_ids).expect("ids serialise")
    ])?;
    Ok(EventIngest {
        duplicate: false,
        run_ids,
    })
}

/// Who claims, when, and for how long the start may be held (`None`:
/// written at the claim).
pub(super) struct Claimer<'a> {
    pub(super) worker_id: &'a str,
    pub(super) now: i64,
    pub(super) hold_for: Option<Duration>,
}

/// Claims the oldest claimable run for `claimer`: its start is written
/// now, or held (see held_starts.rs).
pub(super) fn claim(
    tx: &Connection,
    held: &mut HeldStarts,
    claimer: &Claimer<'_>,
    per_script_limit: i64,
) -> StoreResult<Option<RunRow>> {
    let Some((run_id, script_id)) = pick(tx, held, per_script_limit, claimer.now)? else {
        return Ok(None);
    };
    if claimer.hold_for.is_none() {
        tx.prepare_cached(&SQL.start_run)?.execute(params![
            claimer.now,
            claimer.worker_id,
            run_id,
            claimer.now
        ])?;
    }
    let mut read = tx.prepare_cached(&SQL.read_run)?;
    let mut rows = read.query(params![run_id])?;
    let Some(mut run) = rows.next()?.map(run_from_row).transpose()? else {
        return Ok(None);
    };
    if let Some(window) = claimer.hold_for {
        // The worker gets the run as it will be written: started now, by it.
        run.status = super::run_status::RUNNING.into();
        run.worker_id = Some(claimer.worker_id.to_string());
        run.started_at = Some(claimer.now);
        run.heartbeat_at = Some(claimer.now);
        held.hold(Held {
            run_id,
            script_id,
            worker_id: claimer.worker_id.to_string(),
            started_at: claimer.now,
            due: Instant::now() + window,
        });
    }
    Ok(Some(run))
}

/// The oldest queued run past its backoff that is not held, of a script
/// below its concurrency cap (its running runs and its held ones): its id
/// and script. The queue is read in claim order, and a script found at its
/// cap is not counted again.
fn pick(
    tx: &Connection,
    held: &HeldStarts,
    per_script_limit: i64,
    now: i64,
) -> StoreResult<Option<(String, String)>> {
    let mut queued = tx.prepare_cached(&SQL.claim_queued)?;
    let mut running = tx.prepare_cached(&SQL.script_running)?;
    let mut rows = queued.query(params![now])?;
    let mut at_cap: Vec<String> = Vec::new();
    while let Some(row) = rows.next()? {
        let run_id: String = row.get(0)?;
        if held.holds(&run_id) {
            continue;
        }
        let script_id: String = row.get(1)?;
        if at_cap.contains(&script_id) {
            continue;
        }
        let running: i64 = running.query_row(params![script_id], |row| row.get(0))?;
        if running + held.of_script(&script_id) < per_script_limit {
            return Ok(Some((run_id, script_id)));
        }
        at_cap.push(script_id);
    }
    Ok(None)
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

/// Records how run `run_id` ended, if it is still `claimer`'s (held, or
/// running under its worker); queues its retry; claims the worker's next
/// run. (The finished run no longer counts against its script's cap; a run
/// the worker lost still does.)
pub(super) fn finish_run(
    tx: &Connection,
    held: &mut HeldStarts,
    run_id: &str,
    claimer: &Claimer<'_>,
    finish: &RunFinish,
    retry: Option<&RetryPlan>,
    claim_next: Option<i64>,
) -> StoreResult<(bool, Option<RunRow>)> {
    let (worker_id, now) = (claimer.worker_id, claimer.now);
    let outcome = params![
        finish.status,
        finish.exit_code,
        finish.duration_ms,
        finish.error,
        finish.stdout,
        finish.stderr,
        i64::from(finish.stdout_truncated),
        i64::from(finish.stderr_truncated),
        finish.output_cap,
        now,
        run_id,
        worker_id,
    ];
    let finished = match held.release(run_id, worker_id) {
        // Its start and its end in one change (cancelled meanwhile: none).
        Some(run) => {
            let mut finish_held = tx.prepare_cached(&SQL.finish_held)?;
            let mut values = outcome.to_vec();
            values.push(&run.started_at);
            finish_held.execute(values.as_slice())? > 0
        }
        None => tx.prepare_cached(&SQL.finish_run)?.execute(outcome)? > 0,
    };
    if let (true, Some(retry)) = (finished, retry) {
        tx.prepare_cached(&SQL.retry_run)?.execute(params![
            new_id("run"),
            retry.attempt,
            retry.first_run_id,
            now,
            retry.not_before,
            run_id
        ])?;
    }
    // The finish stands even if the claim after it fails (the store's
    // contract): otherwise the run would stay `running` and be run again
    // once its heartbeat went stale. A failed statement is undone on its
    // own; only if SQLite gave up the whole transaction does the job fail.
    let next = match claim_next {
        Some(limit) => match claim(tx, held, claimer, limit) {
            Err(err) if !tx.is_autocommit() => {
                tracing::warn!(error = %err, "claiming the next run after a finish failed");
                None
            }
            claimed => claimed?,
        },
        None => None,
    };
    Ok((finished, next))
}

/// A run row's columns, read by position where the statement lists them
/// as `RUN_COLUMNS` does (the writer's rows all do) and by name otherwise.
/// rusqlite finds a column by name by asking SQLite for every column's
/// name in turn: reading a run's 23 columns so took some 6% of the
/// writer's time.
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
