//! A run's state writes on the SQLite writer's connection, inside the turn
//! that records the run's end: the checks and writes of state.rs's
//! `check_in` and `apply_in`, through rusqlite, with one read for all the
//! touched keys.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, params};

use super::writer_jobs::numbered;
use crate::store::state::{
    Checked, STATE_DELETE_SQL, STATE_PRUNE_SQL, STATE_USAGE_LOCK_SQL, STATE_USAGE_SET_SQL, Stored,
    check, padded, touched_keys,
};
use crate::store::{StateUsage, StateWrites, StoreResult, state_entry_size};

struct StateSql {
    usage_lock: String,
    prune: String,
    delete: String,
    usage_set: String,
}

static SQL: LazyLock<StateSql> = LazyLock::new(|| StateSql {
    usage_lock: numbered(STATE_USAGE_LOCK_SQL),
    prune: numbered(STATE_PRUNE_SQL),
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
    // One statement reads the touched keys and the expired entries.
    let keys = padded(&touched_keys(writes));
    let places: Vec<String> = (3..keys.len() + 3).map(|n| format!("?{n}")).collect();
    let sql = format!(
        "SELECT key, size, value, (expires_at IS NOT NULL AND expires_at <= ?2) FROM script_state \
         WHERE script_id = ?1 AND (key IN ({}) OR expires_at <= ?2)",
        places.join(", ")
    );
    let mut read = tx.prepare_cached(&sql)?;
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&script_id, &now];
    values.extend(keys.iter().map(|k| k as &dyn rusqlite::ToSql));
    let mut rows = read.query(values.as_slice())?;
    let mut stored = HashMap::new();
    while let Some(row) = rows.next()? {
        let size: i64 = row.get(1)?;
        if row.get::<_, bool>(3)? {
            usage.keys -= 1;
            usage.bytes -= size;
        } else {
            stored.insert(
                row.get::<_, String>(0)?,
                Stored {
                    size,
                    value: row.get(2)?,
                },
            );
        }
    }
    Ok(match check(writes, usage, &stored) {
        Ok(after) => Checked::Passed(after),
        Err(refused) => Checked::Refused(refused),
    })
}

/// Most rows one upsert writes (four parameters each, well within
/// SQLite's limit on parameters).
const ROWS_PER_UPSERT: usize = 256;

/// An upsert of `rows` entries of script `?1` at `?2` for run `?3`: each
/// row's key, value, size and expiry from `?4` on.
fn upsert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|n| {
            let p = 4 + 4 * n;
            format!("(?1, ?{p}, ?{}, ?{}, ?{}, ?2, ?3)", p + 1, p + 2, p + 3)
        })
        .collect();
    format!(
        "INSERT INTO script_state (script_id, key, value, size, expires_at, updated_at, run_id) \
         VALUES {} ON CONFLICT (script_id, key) DO UPDATE SET value = excluded.value, \
         size = excluded.size, expires_at = excluded.expires_at, updated_at = excluded.updated_at, \
         run_id = excluded.run_id",
        values.join(", ")
    )
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
    let mut written = Vec::with_capacity(writes.changes.len());
    for change in &writes.changes {
        match &change.value {
            Some(value) => written.push((
                change.key.as_str(),
                value.as_str(),
                state_entry_size(&change.key, value),
                change.expires_at,
            )),
            None => {
                tx.prepare_cached(&SQL.delete)?
                    .execute(params![script_id, change.key])?;
            }
        }
    }
    // Many rows per statement; a chunk is padded with its first row again
    // (written twice, the same) so that statements come in few shapes.
    for chunk in written.chunks(ROWS_PER_UPSERT) {
        let rows = chunk.len().next_power_of_two();
        let mut upsert = tx.prepare_cached(&upsert_sql(rows))?;
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&script_id, &now, &run_id];
        for n in 0..rows {
            let (key, value, size, expires_at) = chunk.get(n).unwrap_or(&chunk[0]);
            values.extend([
                key as &dyn rusqlite::ToSql,
                value as &dyn rusqlite::ToSql,
                size as &dyn rusqlite::ToSql,
                expires_at as &dyn rusqlite::ToSql,
            ]);
        }
        upsert.execute(values.as_slice())?;
    }
    tx.prepare_cached(&SQL.usage_set)?
        .execute(params![script_id, usage.keys, usage.bytes])?;
    Ok(())
}
