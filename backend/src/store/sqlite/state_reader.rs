//! Reads of script state for runs, on a read-only rusqlite connection of
//! the store's own, on the calling thread: a run asks for its keys once
//! (`get_many`), and a read through sqlx's pool cost more in the hand-off
//! to the connection's thread and back than the read itself
//! (BENCHMARKS.md, state). SQLite's WAL lets it read while the writer
//! writes; the lock is held for one indexed read.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

use crate::store::state::padded;
use crate::store::{StateEntry, StoreError, StoreResult};

/// The state reader's connection.
pub(crate) struct StateReader {
    conn: Mutex<Connection>,
}

impl StateReader {
    /// A reader of the database at `path`.
    pub(super) fn open(path: &Path) -> StoreResult<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// The live entries of script `script_id` under `keys` at `now`.
    pub(crate) fn entries_by_keys(
        &self,
        script_id: &str,
        keys: &[&str],
        now: i64,
    ) -> StoreResult<Vec<StateEntry>> {
        let keys = padded(keys);
        let places: Vec<String> = (3..keys.len() + 3).map(|n| format!("?{n}")).collect();
        let sql = format!(
            "SELECT key, value, expires_at, updated_at, run_id FROM script_state \
             WHERE script_id = ?1 AND (expires_at IS NULL OR expires_at > ?2) AND key IN ({})",
            places.join(", ")
        );
        let conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Writer("state reader poisoned".into()))?;
        let mut statement = conn.prepare_cached(&sql)?;
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&script_id, &now];
        values.extend(keys.iter().map(|k| k as &dyn rusqlite::ToSql));
        let rows = statement.query_map(values.as_slice(), |row| {
            Ok(StateEntry {
                key: row.get(0)?,
                value: row.get(1)?,
                expires_at: row.get(2)?,
                updated_at: row.get(3)?,
                run_id: row.get(4)?,
            })
        })?;
        let mut entries: Vec<StateEntry> = rows.collect::<Result<_, _>>()?;
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }
}
