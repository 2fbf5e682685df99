//! A run's state writes on PostgreSQL, inside the transaction that records
//! the run's end: the checks of state.rs's `check_in` and the writes of its
//! `apply_in` in three round trips, whatever the number of keys. The
//! script's usage row is held from the first statement to the commit, so
//! the fewer trips, the shorter the turns runs of one script take.

use std::collections::HashMap;

use sqlx::{PgConnection, Row as _};

use crate::store::state::{Checked, STATE_USAGE_LOCK_SQL, Stored, check, touched_keys};
use crate::store::{StateUsage, StateWrites, StoreResult, state_entry_size};

/// The touched keys `$2` of script `$1` (live or not) and every entry of it
/// expired by `$3`.
const TOUCHED_OR_EXPIRED_SQL: &str = "SELECT key, size, value, \
     (expires_at IS NOT NULL AND expires_at <= $3) AS expired FROM script_state \
     WHERE script_id = $1 AND (key = ANY($2) OR expires_at <= $3)";

/// Prunes script `$1`'s entries expired by `$2` (except those written now),
/// removes keys `$3`, writes keys `$4` with values `$5`, sizes `$6` and
/// expiries `$7` at `$2` for run `$8`, and sets the usage to `$9` keys and
/// `$10` bytes. The key sets are disjoint, so no row is touched twice.
const APPLY_SQL: &str = "WITH pruned AS (DELETE FROM script_state WHERE script_id = $1 \
     AND expires_at <= $2 AND NOT key = ANY($3) AND NOT key = ANY($4)), \
     removed AS (DELETE FROM script_state WHERE script_id = $1 AND key = ANY($3)), \
     written AS (INSERT INTO script_state (script_id, key, value, size, expires_at, updated_at, run_id) \
     SELECT $1, w.key, w.value, w.size, w.expires_at, $2, $8 \
     FROM unnest($4::text[], $5::text[], $6::bigint[], $7::bigint[]) AS w(key, value, size, expires_at) \
     ON CONFLICT (script_id, key) DO UPDATE SET value = excluded.value, size = excluded.size, \
     expires_at = excluded.expires_at, updated_at = excluded.updated_at, run_id = excluded.run_id) \
     UPDATE script_state_usage SET keys = $9, bytes = $10 WHERE script_id = $1";

/// Takes the script's turn and checks `writes` against what is stored.
pub(super) async fn check_writes(
    conn: &mut PgConnection,
    script_id: &str,
    writes: &StateWrites,
    now: i64,
) -> StoreResult<Checked> {
    let Some(row) = sqlx::query(STATE_USAGE_LOCK_SQL)
        .bind(script_id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(Checked::NoScript);
    };
    let mut usage = StateUsage {
        keys: row.try_get("keys")?,
        bytes: row.try_get("bytes")?,
    };
    let keys: Vec<&str> = touched_keys(writes);
    let rows = sqlx::query(TOUCHED_OR_EXPIRED_SQL)
        .bind(script_id)
        .bind(&keys)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    let mut stored = HashMap::new();
    for row in rows {
        let size: i64 = row.try_get("size")?;
        if row.try_get::<bool, _>("expired")? {
            usage.keys -= 1;
            usage.bytes -= size;
        } else {
            stored.insert(
                row.try_get::<String, _>("key")?,
                Stored {
                    size,
                    value: row.try_get("value")?,
                },
            );
        }
    }
    Ok(match check(writes, usage, &stored) {
        Ok(after) => Checked::Passed(after),
        Err(refused) => Checked::Refused(refused),
    })
}

/// Writes what `check_writes` passed, as run `run_id`'s, leaving `usage`.
pub(super) async fn apply_writes(
    conn: &mut PgConnection,
    script_id: &str,
    run_id: &str,
    writes: &StateWrites,
    usage: StateUsage,
    now: i64,
) -> StoreResult<()> {
    let (mut removed, mut keys, mut values, mut sizes, mut expiries) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for change in &writes.changes {
        match &change.value {
            Some(value) => {
                keys.push(change.key.as_str());
                values.push(value.as_str());
                sizes.push(state_entry_size(&change.key, value));
                expiries.push(change.expires_at);
            }
            None => removed.push(change.key.as_str()),
        }
    }
    sqlx::query(APPLY_SQL)
        .bind(script_id)
        .bind(now)
        .bind(&removed)
        .bind(&keys)
        .bind(&values)
        .bind(&sizes)
        .bind(&expiries)
        .bind(run_id)
        .bind(usage.keys)
        .bind(usage.bytes)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
