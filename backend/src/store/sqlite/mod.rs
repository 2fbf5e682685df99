//! The embedded default: one SQLite file in the data directory. Reads and
//! the rare writes (deploys, credentials, ticks…) go through a sqlx pool;
//! the run queue's writes go through a writer thread of its own
//! (group_commit.rs), which batches them into few transactions.

mod claims;
mod connection;
mod emitted;
mod endpoint_cache;
mod group_commit;
mod held_starts;
#[cfg(test)]
pub(crate) mod plans;
mod queue;
mod run_ends;
mod run_reader;
mod run_state;
mod wal;
mod writer_jobs;

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreResult;
use super::engine::{Engine, SqlStore};
use group_commit::GroupCommit;
pub(crate) use run_reader::RunReader;

/// The store on SQLite.
pub(crate) type SqliteStore = SqlStore<sqlx::Sqlite>;

// Write transactions take the write lock up front (IMMEDIATE): a deferred
// transaction that reads and then writes can fail with SQLITE_BUSY at once,
// without waiting, when another writer got in between. That lock also
// makes one user's deploys take turns.
impl Engine for sqlx::Sqlite {
    type Queue = OwnConnections;
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const USER_LOCK_SQL: Option<&'static str> = None;
    const QUEUE_DEPTH_SQL: &'static str = QUEUE_DEPTH_SQL;
    const RUNS_IN_STATE: &'static [(&'static str, &'static str)] = RUNS_IN_STATE;
    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }
    fn run_reader(queue: &OwnConnections) -> Option<&RunReader> {
        Some(&queue.state)
    }
}

/// The connections the SQLite store keeps beside its sqlx pool: the
/// writer's, on its own thread, and one for runs' state reads.
pub(crate) struct OwnConnections {
    writer: GroupCommit,
    state: RunReader,
}

/// The WAL is rewound once it holds more than this (see group_commit.rs).
const DEFAULT_WAL_LIMIT: u64 = 128 << 20;

impl SqlStore<sqlx::Sqlite> {
    /// Opens (creating if needed) the database and applies the migrations.
    pub(crate) async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with_wal_limit(url, DEFAULT_WAL_LIMIT).await
    }

    /// As `connect`, with the WAL rewound past `wal_limit` bytes instead of
    /// 128 MiB: a smaller WAL on disk for more frequent stalls
    /// of a few milliseconds under sustained writes.
    pub(crate) async fn connect_with_wal_limit(url: &str, wal_limit: u64) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        // A SQLite connection is a file handle in this process: there is no
        // server to lose, so no ping (a round trip to the connection's
        // thread) before each use.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        // The hot writes go through a connection of their own, on a
        // thread of their own (see group_commit.rs).
        Ok(Self {
            queue: OwnConnections {
                writer: GroupCommit::start(options.get_filename(), wal_limit)?,
                state: RunReader::open(options.get_filename())?,
            },
            pool,
        })
    }
}

/// The statuses whose runs have a partial index of their own (migration
/// 0016), and how a listing of them names it. Only runs in that state are
/// read: the queued runs of every user (bounded by the queue caps), or the
/// running ones (a few per worker), instead of the user's whole history.
const RUNS_IN_STATE: &[(&str, &str)] = &[
    ("queued", "runs INDEXED BY runs_queued"),
    ("running", "runs INDEXED BY runs_running"),
];

/// User `$1`'s queued runs and their runs' payload bytes, kept by triggers
/// (migrations 0015, 0020): one row instead of a count over every queued
/// run, on each event and manual run.
const QUEUE_DEPTH_SQL: &str = "SELECT COALESCE(MAX(queued), 0) AS n, COALESCE(MAX(payload_bytes), 0) AS bytes \
     FROM queue_depth WHERE user_id = $1";
