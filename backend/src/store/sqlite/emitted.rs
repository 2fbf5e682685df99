//! The events a run emitted, written in its finish's transaction: each is
//! recorded and queues its subscribers' runs as a posted event would, or is
//! recorded as stopped (past the chain limit, or its owner's queue full).

use rusqlite::Connection;

use super::writer_jobs::{ingest, insert_event};
use crate::store::{RunEffects, StoreError, StoreResult};

pub(super) fn write_emitted(tx: &Connection, effects: &RunEffects, now: i64) -> StoreResult<()> {
    for emitted in &effects.emitted {
        let event = &emitted.event;
        if emitted.past_chain_limit {
            insert_event(tx, event, &[], Some("chain_limit"), now)?;
            continue;
        }
        match ingest(tx, event, effects.queue_limits, now) {
            Ok(_) => {}
            // Checked before any run is written: the event is kept, stopped.
            Err(StoreError::QueueFull { .. } | StoreError::PayloadQuotaFull { .. }) => {
                insert_event(tx, event, &[], Some("queue_full"), now)?;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
