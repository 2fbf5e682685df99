use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::StoreResult;
use super::group_commit::GroupCommit;

/// The embedded default: one SQLite file in the data directory.
pub struct SqliteStore {
    /// Reads, and the writes that are rare (deploys, credentials, ticks…).
    pool: SqlitePool,
    /// Events, claims and finishes, committed in turns by a writer thread.
    writer: GroupCommit,
}

/// The WAL is rewound once it holds more than this (see group_commit.rs).
const DEFAULT_WAL_LIMIT: u64 = 128 << 20;

impl SqliteStore {
    /// Opens (creating if needed) the database and applies the migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with_wal_limit(url, DEFAULT_WAL_LIMIT).await
    }

    /// As `connect`, with the WAL rewound past `wal_limit` bytes instead of
    /// 128 MiB: a smaller WAL on disk for more frequent stalls
    /// of a few milliseconds under sustained writes.
    pub async fn connect_with_wal_limit(url: &str, wal_limit: u64) -> StoreResult<Self> {
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
            writer: GroupCommit::start(options.get_filename(), wal_limit)?,
            pool,
        })
    }

    fn group_commit(&self) -> Option<&GroupCommit> {
        Some(&self.writer)
    }

    fn others_queued_sql(&self) -> &'static str {
        OTHERS_QUEUED_SQL
    }

    // One process: its workers announce the runs they end themselves.
    fn run_end_notice(&self) -> Option<&'static str> {
        None
    }

    async fn listen_for_run_ends(
        &self,
    ) -> StoreResult<Option<futures_util::stream::BoxStream<'static, String>>> {
        Ok(None)
    }
}

/// Queued runs a claim may take: oldest first, none before its backoff
/// (`$1`, now), none of a script already at its concurrency cap (`$2`),
/// none of the users in `$3` (a JSON array).
/// Both scans name their partial index (migration 0016): each holds only
/// the runs in one state, so a claim never walks the run history.
pub(super) const CLAIM_CANDIDATES: &str = "FROM runs q INDEXED BY runs_queued WHERE status = 'queued' AND (not_before IS NULL OR not_before <= $1) \
     AND (SELECT COUNT(*) FROM runs r INDEXED BY runs_running WHERE r.script_id = q.script_id AND r.status = 'running') \
     < $2 AND user_id NOT IN (SELECT value FROM json_each($3)) ORDER BY queued_at, id LIMIT 1";

/// The writer's claim, step one: the queued runs past their backoff (`$1`,
/// now), oldest first, read until one is claimable (see `pick` in
/// group_commit.rs, which adds the runs it holds to each script's count).
pub(super) const CLAIM_QUEUED_SQL: &str = "SELECT id, script_id, user_id FROM runs INDEXED BY runs_queued \
     WHERE status = 'queued' AND (not_before IS NULL OR not_before <= $1) ORDER BY queued_at, id";

/// Whether a user other than those in `$1` (a JSON array) has runs queued.
/// A claim that skips users asks first: otherwise it would read past every
/// queued run of theirs to find none.
pub(super) const OTHERS_QUEUED_SQL: &str = "SELECT EXISTS (SELECT 1 FROM queue_depth WHERE queued > 0 \
     AND user_id NOT IN (SELECT value FROM json_each($1)))";

/// How many of script `$1`'s runs are running, for its concurrency cap.
pub(super) const SCRIPT_RUNNING_SQL: &str = "SELECT COUNT(*) FROM runs INDEXED BY runs_running \
     WHERE script_id = $1 AND status = 'running'";

/// The writer's claim, step two: run `$3` is worker `$2`'s since `$1`,
/// heart-beaten at `$4` (a held start is written later than it began).
/// The pick and this update share the writer's transaction, which holds
/// SQLite's write lock, so nobody claims the run in between. (A single
/// `UPDATE … RETURNING` would do both, but SQLite gathers a RETURNING
/// statement's rows in a temporary b-tree it opens and closes on every
/// call, which a profile showed costly: docs/store-decisions.md.)
pub(super) const START_RUN_SQL: &str = "UPDATE runs SET status = 'running', worker_id = $2, started_at = $1, heartbeat_at = $4 \
     WHERE id = $3 AND status = 'queued'";

/// A held run's end and its start in one change (see held_starts.rs):
/// `FINISH_RUN_SQL`'s `$1`-`$12`, and `$13` when it started. Nothing
/// changes if it was cancelled while held.
pub(super) const FINISH_HELD_RUN_SQL: &str = "UPDATE runs SET status = $1, exit_code = $2, duration_ms = $3, error = $4, \
     stdout = $5, stderr = $6, stdout_truncated = $7, stderr_truncated = $8, output_cap = $9, finished_at = $10, \
     worker_id = $12, started_at = $13, heartbeat_at = $13 WHERE id = $11 AND status = 'queued'";

// Write transactions take the write lock up front (IMMEDIATE): a deferred
// transaction that reads and then writes can fail with SQLITE_BUSY at once,
// without waiting, when another writer got in between. Claims go through
// the group-commit writer (CLAIM_PICK, START_RUN_SQL), so no per-script
// lock is needed.
super::sql::sql_store!(
    SqliteStore,
    db = sqlx::Sqlite,
    begin = "BEGIN IMMEDIATE",
    claim_begin = "BEGIN IMMEDIATE",
    claim_candidates = CLAIM_CANDIDATES,
    script_lock_sql = None::<&str>,
    queued_runs_sql = QUEUE_DEPTH_SQL,
    runs_in_state = RUNS_IN_STATE
);

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
pub(super) const QUEUE_DEPTH_SQL: &str = "SELECT COALESCE(MAX(queued), 0) AS n, COALESCE(MAX(payload_bytes), 0) AS bytes \
     FROM queue_depth WHERE user_id = $1";
