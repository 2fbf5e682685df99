//! The SQLite store's WAL: copied back into the database file in small
//! rounds by a checkpointer thread beside the writer, and bounded by the
//! writer, which rewinds it once it passes its limit (see group_commit.rs
//! for the writer itself).

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::connection::retry_soon;

/// How often the WAL is copied back into the database file: often enough
/// that each copy is small, so that events arriving during one are not held
/// up (docs/store-decisions.md).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(10);

/// The WAL's bound. A passive checkpoint never rewinds the WAL: SQLite
/// starts it over only when a write begins with every frame already copied
/// back, and while writes keep coming, frames arrive during each copy. Under
/// sustained load the WAL would grow without bound (150 MB in the events
/// bench's 1.5 s burst; 216 MB in the test of this bound). So once the WAL
/// file is longer than the limit, the writer, between two turns, copies
/// what the background checkpoints have not (a RESTART checkpoint), and its
/// next turn starts the WAL over and cuts the file back to the limit
/// (`journal_size_limit`). The file can only outgrow the limit again by
/// holding that many new frames.
///
/// The writer does it because a RESTART from another connection must first
/// win the write lock from a writer that hardly lets go of it: the WAL kept
/// growing while it waited. A rewind holds the writer up for its fsyncs,
/// so the default limit is large: one stall about a second under the
/// heaviest load measured (docs/store-decisions.md).
pub(super) struct WalLimit {
    file: std::path::PathBuf,
    bytes: u64,
    /// The WAL file, once it exists, so its length is an `fstat` rather
    /// than a path lookup, which a profile showed costly
    /// (docs/store-decisions.md).
    /// SQLite removes the WAL only when the last connection closes, and
    /// the writer's stays open, so the handle stays the WAL's.
    handle: Option<std::fs::File>,
}

/// A clone opens a handle of its own when it first looks.
impl Clone for WalLimit {
    fn clone(&self) -> Self {
        Self {
            file: self.file.clone(),
            bytes: self.bytes,
            handle: None,
        }
    }
}

/// How often the writer looks at the WAL's length (an `fstat`) while it
/// works: at most once a millisecond, not once a turn; the WAL grows by
/// well under a megabyte in that time.
const WAL_LOOK_EVERY: Duration = Duration::from_millis(1);

/// How long a rewind waits for readers before it gives up for now, and how
/// long until it tries again. A background checkpoint in progress makes it
/// give up at once (SQLite runs one checkpoint at a time and does not wait
/// for another; the background loop starts none while the WAL is over the
/// limit), and it tries again a millisecond later.
const REWIND_WAIT: Duration = Duration::from_millis(20);
const REWIND_RETRY: Duration = Duration::from_millis(100);
const REWIND_RETRY_SOON: Duration = Duration::from_millis(1);

impl WalLimit {
    pub(super) fn new(db: &Path, bytes: u64) -> Self {
        let mut file = db.as_os_str().to_owned();
        file.push("-wal");
        Self {
            file: file.into(),
            bytes,
            handle: None,
        }
    }

    fn len(&mut self) -> u64 {
        if self.handle.is_none() {
            self.handle = std::fs::File::open(&self.file).ok();
        }
        self.handle
            .as_ref()
            .and_then(|file| file.metadata().ok())
            .map_or(0, |meta| meta.len())
    }

    pub(super) fn exceeded(&mut self) -> bool {
        self.len() > self.bytes
    }

    /// Rewinds the WAL if its file is longer than the limit; returns how
    /// long until the writer looks again.
    pub(super) fn keep(&mut self, conn: &mut Connection) -> Duration {
        let len = self.len();
        if len <= self.bytes {
            return WAL_LOOK_EVERY;
        }
        let started = std::time::Instant::now();
        let done = rewind(conn);
        let took_us = started.elapsed().as_micros() as u64;
        match done {
            Ok(true) => {
                tracing::debug!(wal_bytes = len, took_us, "SQLite WAL rewound");
                WAL_LOOK_EVERY
            }
            Ok(false) if started.elapsed() < REWIND_WAIT / 2 => REWIND_RETRY_SOON,
            Ok(false) => {
                tracing::warn!(
                    wal_bytes = len,
                    "SQLite WAL not rewound: readers kept it busy; trying again shortly"
                );
                REWIND_RETRY
            }
            Err(err) => {
                tracing::warn!(error = %err, "rewinding the SQLite WAL failed; trying again shortly");
                REWIND_RETRY
            }
        }
    }
}

/// A RESTART checkpoint that waits at most `REWIND_WAIT` for readers; true
/// if it copied everything (the next write starts the WAL over).
fn rewind(conn: &mut Connection) -> rusqlite::Result<bool> {
    conn.busy_timeout(REWIND_WAIT)?;
    let busy = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| {
        row.get::<_, i64>(0)
    });
    conn.busy_handler(Some(retry_soon))?;
    Ok(busy? == 0)
}

/// Copies committed pages from the WAL back into the database file.
/// SQLite would do it on the commit that crosses 1,000 WAL pages, and that
/// commit (the writer's) would then wait milliseconds for the copy and its
/// fsyncs, as would every caller in its turn. A passive checkpoint from
/// another connection runs beside the writer and blocks none of its
/// commits, though the server's requests still slow down while a copy and
/// its fsync go on: hence small rounds (`CHECKPOINT_EVERY`).
///
/// It runs on a thread and connection of its own rather than on the
/// store's sqlx pool, where each round held one of the readers'
/// connections for the length of its copy and fsyncs.
///
/// A passive checkpoint never starts the WAL over; the writer bounds it
/// (`WalLimit`), and none starts while the writer is about to.
pub(super) fn checkpoint_loop(conn: Connection, written: mpsc::Receiver<()>, mut wal: WalLimit) {
    let mut failing = false;
    // An idle server checkpoints nothing: each round starts with a write,
    // and the writer's end (its sender dropped) ends the loop.
    while written.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_EVERY);
        // Writes signalled until now are copied by this round.
        let _ = written.try_recv();
        if wal.exceeded() {
            // The writer is about to rewind it, which this would hold up.
            continue;
        }
        let started = Instant::now();
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        match done {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("SQLite checkpoints work again");
            }
            Ok(()) => {
                let took_us = started.elapsed().as_micros() as u64;
                tracing::debug!(took_us, "SQLite WAL checkpointed");
            }
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = %err, "checkpointing the SQLite WAL failed; it grows until a checkpoint succeeds");
            }
            Err(_) => {}
        }
    }
}
