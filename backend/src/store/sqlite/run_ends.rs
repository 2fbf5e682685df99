//! How the writer records a run's end inside its turn (group_commit.rs):
//! a claimed run's, with the run's effects and its retry, or the whole
//! record of a run begun outside the queue (queue/here.rs), written as one
//! new row.

use rusqlite::{Connection, ToSql, params};

use super::claims::Claimer;
use super::held_starts::HeldStarts;
use super::run_state::{apply_writes, check_writes};
use super::writer_jobs::SQL;
use crate::store::state::{Checked, refused_run_error};
use crate::store::{RetryPlan, RunFinish, RunStatus, StartedRun, StateUsage, StoreResult, new_id};

/// A run begun outside the queue, ended: the whole row at once (`$1`-`$10`
/// as `INSERT_STARTED_RUN_SQL`, then the outcome as `FINISH_RUN_SQL` has
/// it). One insert, where a start and a finish would write the row and
/// the running runs' indexes twice.
pub(super) const INSERT_ENDED_RUN_SQL: &str = "INSERT INTO runs (id, user_id, script_id, script_version, handler, \
     trigger_kind, trigger_spec, payload, status, attempt, queued_at, started_at, heartbeat_at, worker_id, \
     exit_code, duration_ms, error, stdout, stderr, stdout_truncated, stderr_truncated, output_cap, finished_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?11, 1, ?9, ?9, ?9, ?10, \
     ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)";

/// A run's end as `finish` records it (a report's parts).
pub(super) struct Ended<'a> {
    pub(super) run_id: &'a str,
    pub(super) finish: &'a RunFinish,
    pub(super) retry: Option<&'a RetryPlan>,
    pub(super) started_at: Option<i64>,
}

/// Records a run begun outside the queue: as running under its worker
/// while it goes on, or, given how it ended, with its end and effects in
/// one new row (see `RunQueue::record_ended`), answering with the status
/// recorded.
pub(super) fn record(
    tx: &Connection,
    held: &HeldStarts,
    run: &StartedRun,
    ended: Option<&RunFinish>,
    now: i64,
) -> StoreResult<Option<RunStatus>> {
    let new = &run.run;
    let payload = new.payload.to_string();
    let trigger_kind = new.trigger_kind.as_str();
    // `$1`-`$10`, the same in both statements.
    let mut values: Vec<&dyn ToSql> = vec![
        &run.id,
        &new.user_id,
        &new.script_id,
        &new.script_version,
        &new.handler,
        &trigger_kind,
        &new.trigger_spec,
        &payload,
        &run.started_at,
        &run.worker_id,
    ];
    let Some(finish) = ended else {
        values.push(&now);
        tx.prepare_cached(&SQL.insert_started_run)?
            .execute(values.as_slice())?;
        return Ok(None);
    };
    let (checked, status, error) = checked(tx, &run.id, finish, now)?;
    let status_text = status.as_str();
    let error = error.as_ref().or(finish.error.as_ref());
    let (stdout_truncated, stderr_truncated) = (
        i64::from(finish.stdout_truncated),
        i64::from(finish.stderr_truncated),
    );
    values.extend([
        &status_text as &dyn ToSql,
        &finish.exit_code,
        &finish.duration_ms,
        &error,
        &finish.stdout,
        &finish.stderr,
        &stdout_truncated,
        &stderr_truncated,
        &finish.output_cap,
        &now,
    ]);
    tx.prepare_cached(INSERT_ENDED_RUN_SQL)?
        .execute(values.as_slice())?;
    write_effects(tx, held, &run.id, finish, checked, now)?;
    Ok(Some(status))
}

/// Records how a run ended, if it is still the claimer's (held, or running
/// under its worker), with its effects, and queues its retry if it failed.
/// A success whose state writes are refused (state.rs) is recorded as a
/// failure, without any of its effects.
pub(super) fn finish(
    tx: &Connection,
    held: &mut HeldStarts,
    claimer: &Claimer<'_>,
    ended: Ended<'_>,
) -> StoreResult<Option<RunStatus>> {
    let (finish, run_id, worker_id, now) =
        (ended.finish, ended.run_id, claimer.worker_id, claimer.now);
    let (checked, status, error) = checked(tx, run_id, finish, now)?;
    let error = error.as_ref().or(finish.error.as_ref());
    let outcome = params![
        status.as_str(),
        finish.exit_code,
        finish.duration_ms,
        error,
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
            let started_at = ended.started_at.unwrap_or(run.started_at);
            let mut finish_held = tx.prepare_cached(&SQL.finish_held)?;
            let mut values = outcome.to_vec();
            values.push(&started_at);
            finish_held.execute(values.as_slice())? > 0
        }
        None => tx.prepare_cached(&SQL.finish_run)?.execute(outcome)? > 0,
    };
    if !finished {
        return Ok(None);
    }
    write_effects(tx, held, run_id, finish, checked, now)?;
    if let Some(retry) = ended.retry.filter(|_| status != RunStatus::Succeeded) {
        tx.prepare_cached(&SQL.retry_run)?.execute(params![
            new_id("run"),
            retry.attempt,
            retry.first_run_id,
            now,
            retry.not_before,
            run_id
        ])?;
    }
    Ok(Some(status))
}

/// The run's state writes checked against what is stored, and the status
/// (and error) it is recorded with: a failure if they were refused.
fn checked(
    tx: &Connection,
    run_id: &str,
    finish: &RunFinish,
    now: i64,
) -> StoreResult<(Checked, RunStatus, Option<String>)> {
    let effects = &finish.effects;
    let checked = if effects.state.is_empty() {
        Checked::Passed(StateUsage::default())
    } else {
        check_writes(tx, &effects.script_id, &effects.state, now)?
    };
    Ok(match &checked {
        Checked::Refused(refused) => {
            tracing::warn!(run_id = %run_id, error = %refused, "a run's state writes were refused; it is recorded as failed");
            let error = refused_run_error(refused);
            (checked, RunStatus::Failed, Some(error))
        }
        _ => (checked, finish.status, None),
    })
}

/// Writes what the run did that roost keeps (state, outbox messages, its
/// HTTP response, the events it emitted), unless its state writes were
/// refused.
fn write_effects(
    tx: &Connection,
    held: &HeldStarts,
    run_id: &str,
    finish: &RunFinish,
    checked: Checked,
    now: i64,
) -> StoreResult<()> {
    let effects = &finish.effects;
    match checked {
        Checked::Refused(_) => return Ok(()),
        Checked::Passed(usage) if !effects.state.is_empty() => {
            apply_writes(tx, &effects.script_id, run_id, &effects.state, usage, now)?;
        }
        _ => {}
    }
    for message in &effects.messages {
        tx.prepare_cached(&SQL.insert_message)?.execute(params![
            message.id,
            message.user_id,
            message.script_id,
            message.run_id,
            message.channel,
            message.recipient,
            message.subject,
            message.body,
            message.created_at,
        ])?;
    }
    if let Some(reply) = &effects.http_response {
        tx.prepare_cached(&SQL.insert_http_response)?
            .execute(params![
                run_id,
                reply.status,
                reply.headers_json(),
                reply.body,
            ])?;
    }
    super::emitted::write_emitted(tx, held, effects, now)
}
