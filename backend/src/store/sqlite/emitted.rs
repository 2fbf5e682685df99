//! The events a run emitted and the runs it scheduled, written in its
//! finish's transaction: each event is recorded and queues its subscribers'
//! runs as a posted event would, or is recorded as stopped (past the chain
//! limit, or its owner's queue full); each scheduled run is queued.

use rusqlite::Connection;

use rusqlite::params;

use super::held_starts::HeldStarts;
use super::writer_jobs::{SQL, ingest, insert_event};
use crate::store::{QueueDepth, RunEffects, StoreError, StoreResult};

pub(super) fn write_emitted(
    tx: &Connection,
    held: &HeldStarts,
    effects: &RunEffects,
    now: i64,
) -> StoreResult<()> {
    for emitted in &effects.emitted {
        let event = &emitted.event;
        if emitted.past_chain_limit {
            insert_event(tx, event, &[], Some("chain_limit"), now)?;
            continue;
        }
        match ingest(tx, held, event, effects.queue_limits, now) {
            Ok(_) => {}
            // Checked before any run is written: the event is kept, stopped.
            Err(StoreError::QueueFull { .. } | StoreError::PayloadQuotaFull { .. }) => {
                insert_event(tx, event, &[], Some("queue_full"), now)?;
            }
            Err(err) => return Err(err),
        }
    }
    for scheduled in &effects.scheduled {
        let run = &scheduled.run;
        let payload = run.payload.to_string();
        if let Some(limits) = effects.queue_limits {
            let depth =
                tx.prepare_cached(&SQL.queue_depth)?
                    .query_row(params![run.user_id], |row| {
                        Ok(QueueDepth {
                            runs: row.get(0)?,
                            payload_bytes: row.get(1)?,
                        })
                    })?;
            if let Err(full) = limits.admit(depth, payload.len() as i64) {
                // The asking run succeeded; the run it asked for is not kept.
                tracing::warn!(run_id = %scheduled.id, error = %full, "a scheduled run was dropped: its owner's queue is full");
                continue;
            }
        }
        tx.prepare_cached(&SQL.insert_scheduled_run)?
            .execute(params![
                scheduled.id,
                run.user_id,
                run.script_id,
                run.script_version,
                run.handler,
                run.trigger_kind.as_str(),
                run.trigger_spec,
                payload,
                now,
                run.not_before,
                scheduled.chain_depth,
            ])?;
    }
    Ok(())
}
