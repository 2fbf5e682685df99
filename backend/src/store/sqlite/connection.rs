//! The connections SQLite's writer and checkpointer open for themselves,
//! outside sqlx's pool.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::{StoreError, StoreResult};

/// A connection for the writer or the checkpointer, with the settings of
/// the store's pool and without automatic checkpoints.
pub(super) fn open_own_connection(path: &Path, wal_limit: u64) -> StoreResult<Connection> {
    if path.as_os_str().is_empty() || path == Path::new(":memory:") {
        return Err(StoreError::Writer(
            "needs a database file: an in-memory database cannot be shared with its thread".into(),
        ));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Another connection holds the write lock only briefly (a deploy, a
    // schedule tick, a heartbeat): try again every 100 us rather
    // than after SQLite's default sleeps of 1, 2, 5, 10 ms, for up to 5 s.
    conn.busy_handler(Some(retry_soon))?;
    // Every statement the writer runs stays prepared (rusqlite keeps 16 by
    // default, fewer than the writer's own).
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // When the WAL starts over after growing past the restart bound, the
    // file is cut back to it (it would otherwise keep its largest size).
    conn.pragma_update(
        None,
        "journal_size_limit",
        i64::try_from(wal_limit).unwrap_or(i64::MAX),
    )?;
    Ok(conn)
}

/// How long the busy handler sleeps before trying again.
const BUSY_RETRY: Duration = Duration::from_micros(100);

/// The busy handler: another try after `BUSY_RETRY`, for up to 5 s.
pub(super) fn retry_soon(attempt: i32) -> bool {
    std::thread::sleep(BUSY_RETRY);
    Duration::from_secs(5) > BUSY_RETRY * attempt.unsigned_abs()
}
