//! A run's state writes on the SQLite writer's connection, inside the turn
//! that records the run's end: the same statements and checks as
//! state.rs's `check_in` and `apply_in`, through rusqlite.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, params};

use super::writer_jobs::numbered;
use crate::store::state::{
    Checked, STATE_DELETE_SQL, STATE_EXPIRED_SQL, STATE_PRUNE_SQL, STATE_STORED_SQL,
    STATE_UPSERT_SQL, STATE_USAGE_LOCK_SQL, STATE_USAGE_SET_SQL, Stored, check, touched_keys,
};
use crate::store::{StateUsage, StateWrites, StoreResult, state_entry_size};

struct StateSql {
    usage_lock: String,
    expired: String,
    stored: String,
    prune: String,
    upsert: String,
    delete: String,
    usage_set: String,
}

static SQL: LazyLock<StateSql> = LazyLock::new(|| StateSql {
    usage_lock: numbered(STATE_USAGE_LOCK_SQL),
    expired: numbered(STATE_EXPIRED_SQL),
    stored: numbered(STATE_STORED_SQL),
    prune: numbered(STATE_PRUNE_SQL),
    upsert: numbered(STATE_UPSERT_SQL),
    delete: numbered(STATE_DELETE_SQL),
    usage_set: numbered(STATE_USAGE_SET_SQL),
});

/// Checks script `script_id`'s `writes` against what is stored.
pub(super) fn check_writes(
    tx: &Connection,
    script_id: &str,
    writes: &StateWrites,
    now: i64,
) -> StoreResult<Checked> {
    let usage = tx
        .prepare_cached(&SQL.usage_lock)?
        .query_row(params![script_id], |row| {
            Ok(StateUsage {
                keys: row.get(0)?,
                bytes: row.get(1)?,
            })
        })
        .optional()?;
    let Some(mut usage) = usage else {
        return Ok(Checked::NoScript);
    };
    let (keys, bytes): (i64, i64) = tx
        .prepare_cached(&SQL.expired)?
        .query_row(params![script_id, now], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    usage.keys -= keys;
    usage.bytes -= bytes;
    let mut stored = HashMap::new();
    let mut read = tx.prepare_cached(&SQL.stored)?;
    for key in touched_keys(writes) {
        let found = read
            .query_row(params![script_id, key, now], |row| {
                Ok(Stored {
                    size: row.get(0)?,
                    value: row.get(1)?,
                })
            })
            .optional()?;
        if let Some(found) = found {
            stored.insert(key.to_string(), found);
        }
    }
    Ok(match check(writes, usage, &stored) {
        Ok(after) => Checked::Passed(after),
        Err(refused) => Checked::Refused(refused),
    })
}

/// Writes what `check_writes` passed, as run `run_id`'s.
pub(super) fn apply_writes(
    tx: &Connection,
    script_id: &str,
    run_id: &str,
    writes: &StateWrites,
    usage: StateUsage,
    now: i64,
) -> StoreResult<()> {
    tx.prepare_cached(&SQL.prune)?
        .execute(params![script_id, now])?;
    for change in &writes.changes {
        match &change.value {
            Some(value) => tx.prepare_cached(&SQL.upsert)?.execute(params![
                script_id,
                change.key,
                value,
                state_entry_size(&change.key, value),
                change.expires_at,
                now,
                run_id
            ])?,
            None => tx
                .prepare_cached(&SQL.delete)?
                .execute(params![script_id, change.key])?,
        };
    }
    tx.prepare_cached(&SQL.usage_set)?
        .execute(params![script_id, usage.keys, usage.bytes])?;
    Ok(())
}
