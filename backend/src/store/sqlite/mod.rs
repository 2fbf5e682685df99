//! The embedded default: one SQLite file in the data directory. Reads and
//! the rare writes (deploys, credentials, ticks…) go through a sqlx pool;
//! the run queue's writes go through a writer thread of its own
//! (group_commit.rs), which batches them into few transactions.

mod group_commit;
mod held_starts;
#[cfg(test)]
mod plans;
mod queue;
mod wal;
mod writer_jobs;

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreResult;
use super::engine::{Engine, SqlStore};
use group_commit::GroupCommit;

/// The store on SQLite.
pub(crate) type SqliteStore = SqlStore<sqlx::Sqlite>;

// Write transactions take the write lock up front (IMMEDIATE): a deferred
// transaction that reads and then writes can fail with SQLITE_BUSY at once,
// without waiting, when another writer got in between. That lock also
// makes one user's deploys take turns.
impl Engine for sqlx::Sqlite {
    type Queue = GroupCommit;
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const USER_LOCK_SQL: Option<&'static str> = None;
    const QUEUE_DEPTH_SQL: &'static str = QUEUE_DEPTH_SQL;
    const RUNS_IN_STATE: &'static [(&'static str, &'static str)] = RUNS_IN_STATE;
    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }
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
            queue: GroupCommit::start(options.get_filename(), wal_limit)?,
            pool,
        })
    }
}

/// The writer's claim, step one: the queued runs past their backoff (`$1`,
/// now), oldest first, read until one is claimable (see `pick` in
/// group_commit.rs, which adds the runs it holds to each script's count).
const CLAIM_QUEUED_SQL: &str = "SELECT id, script_id, user_id FROM runs INDEXED BY runs_queued \
     WHERE status = 'queued' AND (not_before IS NULL OR not_before <= $1) ORDER BY queued_at, id";

/// Whether a user other than those in `$1` (a JSON array) has runs queued.
/// A claim that skips users asks first: otherwise it would read past every
/// queued run of theirs to find none.
const OTHERS_QUEUED_SQL: &str = "SELECT EXISTS (SELECT 1 FROM queue_depth WHERE queued > 0 \
     AND user_id NOT IN (SELECT value FROM json_each($1)))";

/// How many of script `$1`'s runs are running, for its concurrency cap.
const SCRIPT_RUNNING_SQL: &str = "SELECT COUNT(*) FROM runs INDEXED BY runs_running \
     WHERE script_id = $1 AND status = 'running'";

/// The writer's claim, step two: run `$3` is worker `$2`'s since `$1`,
/// heart-beaten at `$4` (a held start is written later than it began).
/// The pick and this update share the writer's transaction, which holds
/// SQLite's write lock, so nobody claims the run in between. (A single
/// `UPDATE … RETURNING` would do both, but SQLite gathers a RETURNING
/// statement's rows in a temporary b-tree it opens and closes on every
/// call, which a profile showed costly: docs/store-decisions.md.)
const START_RUN_SQL: &str = "UPDATE runs SET status = 'running', worker_id = $2, started_at = $1, heartbeat_at = $4 \
     WHERE id = $3 AND status = 'queued'";

/// A held run's end and its start in one change (see held_starts.rs):
/// `FINISH_RUN_SQL`'s `$1`-`$12`, and `$13` when it started. Nothing
/// changes if it was cancelled while held.
const FINISH_HELD_RUN_SQL: &str = "UPDATE runs SET status = $1, exit_code = $2, duration_ms = $3, error = $4, \
     stdout = $5, stderr = $6, stdout_truncated = $7, stderr_truncated = $8, output_cap = $9, finished_at = $10, \
     worker_id = $12, started_at = $13, heartbeat_at = $13 WHERE id = $11 AND status = 'queued'";

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
