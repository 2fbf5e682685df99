//! The script state's SQL, and the store of it over either engine through
//! sqlx: reads, and the API's writes (a run's writes are its engine's
//! finish: sqlite/run_state.rs, postgres/run_state.rs).

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::{
    Checked, StateEntry, StateStore, StateUsage, StateWrites, StateWritten, Stored, check, padded,
    prefix_end, state_entry_size, touched_keys,
};
use crate::store::engine::{Column, Engine, SqlStore};
use crate::store::{StoreResult, now_millis};

/// Takes script `$1`'s usage row (creating it) and reads it; no row if the
/// script is gone.
pub(in crate::store) const STATE_USAGE_LOCK_SQL: &str = "INSERT INTO script_state_usage (script_id, keys, bytes) \
     SELECT $1, 0, 0 WHERE EXISTS (SELECT 1 FROM scripts WHERE id = $1) \
     ON CONFLICT (script_id) DO UPDATE SET keys = script_state_usage.keys RETURNING keys, bytes";
/// What script `$1`'s entries expired by `$2` take.
const STATE_EXPIRED_SQL: &str = "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes \
     FROM script_state WHERE script_id = $1 AND expires_at <= $2";
/// The live entry `$2` of script `$1` at `$3`: its size and value.
const STATE_STORED_SQL: &str = "SELECT size, value FROM script_state \
     WHERE script_id = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3)";
/// Removes script `$1`'s entries expired by `$2`.
pub(in crate::store) const STATE_PRUNE_SQL: &str =
    "DELETE FROM script_state WHERE script_id = $1 AND expires_at <= $2";
/// Writes entry `$2` of script `$1`.
const STATE_UPSERT_SQL: &str = "INSERT INTO script_state (script_id, key, value, size, expires_at, updated_at, run_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (script_id, key) DO UPDATE SET value = excluded.value, \
     size = excluded.size, expires_at = excluded.expires_at, updated_at = excluded.updated_at, run_id = excluded.run_id";
/// Removes entry `$2` of script `$1`.
pub(in crate::store) const STATE_DELETE_SQL: &str =
    "DELETE FROM script_state WHERE script_id = $1 AND key = $2";
/// Sets script `$1`'s usage.
pub(in crate::store) const STATE_USAGE_SET_SQL: &str =
    "UPDATE script_state_usage SET keys = $2, bytes = $3 WHERE script_id = $1";

/// Takes script `script_id`'s turn at writing state: its usage as stored
/// (expired entries included), or `None` if the script is gone.
async fn take_turn<DB>(
    conn: &mut DB::Connection,
    script_id: &str,
) -> StoreResult<Option<StateUsage>>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    i64: Column<DB>,
{
    let row = sqlx::query(STATE_USAGE_LOCK_SQL)
        .bind(script_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| {
        Ok(StateUsage {
            keys: row.try_get("keys")?,
            bytes: row.try_get("bytes")?,
        })
    })
    .transpose()
}

/// Takes script `script_id`'s turn at writing state and checks `writes`
/// (see [`check`]), on `conn` inside a write transaction.
async fn check_in<DB>(
    conn: &mut DB::Connection,
    script_id: &str,
    writes: &StateWrites,
    now: i64,
) -> StoreResult<Checked>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    i64: Column<DB>,
{
    let Some(stored) = take_turn::<DB>(conn, script_id).await? else {
        return Ok(Checked::NoScript);
    };
    let expired = sqlx::query(STATE_EXPIRED_SQL)
        .bind(script_id)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
    let usage = StateUsage {
        keys: stored.keys - expired.try_get::<i64, _>("n")?,
        bytes: stored.bytes - expired.try_get::<i64, _>("bytes")?,
    };
    let mut stored = HashMap::new();
    for key in touched_keys(writes) {
        let found = sqlx::query(STATE_STORED_SQL)
            .bind(script_id)
            .bind(key)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(found) = found {
            stored.insert(
                key.to_string(),
                Stored {
                    size: found.try_get("size")?,
                    value: found.try_get("value")?,
                },
            );
        }
    }
    Ok(match check(writes, usage, &stored) {
        Ok(after) => Checked::Passed(after),
        Err(refused) => Checked::Refused(refused),
    })
}

/// Writes a batch [`check_in`] passed, leaving `usage`.
async fn apply_in<DB>(
    conn: &mut DB::Connection,
    script_id: &str,
    run_id: Option<&str>,
    writes: &StateWrites,
    usage: StateUsage,
    now: i64,
) -> StoreResult<()>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
{
    sqlx::query(STATE_PRUNE_SQL)
        .bind(script_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    for change in &writes.changes {
        match &change.value {
            Some(value) => {
                sqlx::query(STATE_UPSERT_SQL)
                    .bind(script_id)
                    .bind(change.key.as_str())
                    .bind(value.as_str())
                    .bind(state_entry_size(&change.key, value))
                    .bind(change.expires_at)
                    .bind(now)
                    .bind(run_id)
                    .execute(&mut *conn)
                    .await?
            }
            None => {
                sqlx::query(STATE_DELETE_SQL)
                    .bind(script_id)
                    .bind(change.key.as_str())
                    .execute(&mut *conn)
                    .await?
            }
        };
    }
    sqlx::query(STATE_USAGE_SET_SQL)
        .bind(script_id)
        .bind(usage.keys)
        .bind(usage.bytes)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn entry_from<R: Row>(row: &R) -> StoreResult<StateEntry>
where
    for<'q> &'q str: ColumnIndex<R>,
    String: Column<R::Database>,
    Option<String>: Column<R::Database>,
    i64: Column<R::Database>,
    Option<i64>: Column<R::Database>,
{
    Ok(StateEntry {
        key: row.try_get("key")?,
        value: row.try_get("value")?,
        expires_at: row.try_get("expires_at")?,
        updated_at: row.try_get("updated_at")?,
        run_id: row.try_get("run_id")?,
    })
}

const ENTRY_COLUMNS: &str = "key, value, expires_at, updated_at, run_id";

#[async_trait]
impl<DB> StateStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    String: Column<DB>,
    Option<String>: Column<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
{
    async fn state_entry(&self, script_id: &str, key: &str) -> StoreResult<Option<StateEntry>> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM script_state WHERE script_id = $1 AND key = $2 \
             AND (expires_at IS NULL OR expires_at > $3)"
        );
        let row = sqlx::query(&sql)
            .bind(script_id)
            .bind(key)
            .bind(now_millis())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(entry_from).transpose()
    }

    async fn state_entries_by_keys(
        &self,
        script_id: &str,
        keys: &[&str],
    ) -> StoreResult<Vec<StateEntry>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(reader) = DB::run_reader(&self.queue) {
            return reader.entries_by_keys(script_id, keys, now_millis());
        }
        // One statement for them all: `key IN ($3, $4, …)`.
        let keys = padded(keys);
        let places: Vec<String> = (3..keys.len() + 3).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM script_state WHERE script_id = $1 \
             AND (expires_at IS NULL OR expires_at > $2) AND key IN ({}) ORDER BY key",
            places.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(script_id).bind(now_millis());
        for key in keys {
            query = query.bind(key);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(entry_from).collect()
    }

    async fn state_entries(
        &self,
        script_id: &str,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<StateEntry>> {
        let end = prefix_end(prefix);
        let from = match after {
            Some(after) if after >= prefix => after,
            _ => prefix,
        };
        // `key > $2` when paging on from a key, `key >= $2` from the prefix.
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM script_state WHERE script_id = $1 \
             AND (key > $2 OR (key = $2 AND $3 = 0)) AND ($4 IS NULL OR key < $4) \
             AND (expires_at IS NULL OR expires_at > $5) ORDER BY key LIMIT $6"
        );
        let rows = sqlx::query(&sql)
            .bind(script_id)
            .bind(from)
            .bind(i64::from(after.is_some_and(|a| a >= prefix)))
            .bind(end.as_deref())
            .bind(now_millis())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from).collect()
    }

    async fn state_usage(&self, script_id: &str) -> StoreResult<StateUsage> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM script_state \
             WHERE script_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(script_id)
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await?;
        Ok(StateUsage {
            keys: row.try_get("n")?,
            bytes: row.try_get("bytes")?,
        })
    }

    async fn write_state(
        &self,
        script_id: &str,
        writes: &StateWrites,
    ) -> StoreResult<StateWritten> {
        let now = now_millis();
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        let usage = match check_in::<DB>(&mut tx, script_id, writes, now).await? {
            Checked::Passed(usage) => usage,
            Checked::Refused(refused) => return Ok(StateWritten::Refused(refused)),
            Checked::NoScript => return Ok(StateWritten::NoScript),
        };
        apply_in::<DB>(&mut tx, script_id, None, writes, usage, now).await?;
        tx.commit().await?;
        Ok(StateWritten::Written(usage))
    }

    async fn replace_state(
        &self,
        script_id: &str,
        writes: &StateWrites,
    ) -> StoreResult<StateWritten> {
        Ok(self.replace_in_turn(script_id, writes).await?.0)
    }

    async fn clear_state(&self, script_id: &str) -> StoreResult<u64> {
        let (_, deleted) = self
            .replace_in_turn(script_id, &StateWrites::default())
            .await?;
        Ok(deleted)
    }
}

impl<DB> SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    i64: Column<DB>,
    Option<i64>: Column<DB>,
{
    /// Replaces the script's whole state with `writes`' changes, in its
    /// turn: what that came to, and how many entries were there before.
    async fn replace_in_turn(
        &self,
        script_id: &str,
        writes: &StateWrites,
    ) -> StoreResult<(StateWritten, u64)> {
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        if take_turn::<DB>(&mut tx, script_id).await?.is_none() {
            return Ok((StateWritten::NoScript, 0));
        }
        let usage = match check(writes, StateUsage::default(), &HashMap::new()) {
            Ok(usage) => usage,
            Err(refused) => return Ok((StateWritten::Refused(refused), 0)),
        };
        let done = sqlx::query("DELETE FROM script_state WHERE script_id = $1")
            .bind(script_id)
            .execute(&mut *tx)
            .await?;
        apply_in::<DB>(&mut tx, script_id, None, writes, usage, now_millis()).await?;
        tx.commit().await?;
        Ok((StateWritten::Written(usage), DB::rows_affected(&done)))
    }
}
