use std::str::FromStr;
use std::sync::LazyLock;

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
            writer: GroupCommit::start(options.get_filename(), pool.clone(), wal_limit)?,
            pool,
        })
    }

    fn group_commit(&self) -> Option<&GroupCommit> {
        Some(&self.writer)
    }
}

/// Queued runs a claim may take: oldest first, none before its backoff
/// (`now`), none of a script already at its concurrency cap (`limit`).
/// `not_counted` adds a condition to the running runs the cap counts.
/// Both scans name their partial index (migration 0016): each holds only
/// the runs in one state, so a claim never walks the run history.
fn claim_candidates(now: &str, limit: &str, not_counted: &str) -> String {
    format!(
        "FROM runs q INDEXED BY runs_queued WHERE status = 'queued' AND (not_before IS NULL OR not_before <= {now}) \
         AND (SELECT COUNT(*) FROM runs r INDEXED BY runs_running WHERE r.script_id = q.script_id AND r.status = 'running'{not_counted}) \
         < {limit} ORDER BY queued_at, id LIMIT 1"
    )
}

static CLAIM_CANDIDATES: LazyLock<String> = LazyLock::new(|| claim_candidates("$1", "$2", ""));

/// A claim in one statement. A write statement takes SQLite's write lock
/// before it reads, so the pick, the per-script cap and the update are
/// atomic without a transaction of their own.
pub(super) static CLAIM_ONE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE runs SET status = 'running', worker_id = $3, started_at = $1, heartbeat_at = $1 \
         WHERE id = (SELECT id {}) AND status = 'queued' RETURNING {}",
        *CLAIM_CANDIDATES,
        super::sql::RUN_COLUMNS
    )
});

/// A worker's finish and its next claim in one statement (one trip to the
/// connection's thread instead of two). `$1`–`$12` are those of
/// `FINISH_RUN_SQL` (`$10` is now); `$13` is the per-script limit. The cap
/// does not count the run being finished here, since it stops running in
/// this very statement. Returns the finished row (if it was still the
/// worker's) and the claimed one (if any).
pub(super) static FINISH_AND_CLAIM: LazyLock<String> = LazyLock::new(|| {
    let finished = |column: &str, value: &str| {
        format!("{column} = CASE WHEN id = $11 THEN {value} ELSE {column} END")
    };
    format!(
        "UPDATE runs SET status = CASE WHEN id = $11 THEN $1 ELSE 'running' END, {}, {}, {}, {}, {}, {}, {}, {}, {}, \
         worker_id = $12, \
         started_at = CASE WHEN id = $11 THEN started_at ELSE $10 END, \
         heartbeat_at = CASE WHEN id = $11 THEN heartbeat_at ELSE $10 END \
         WHERE (id = $11 AND status = 'running' AND worker_id = $12) \
         OR (id = (SELECT id {}) AND status = 'queued') \
         RETURNING {}",
        finished("exit_code", "$2"),
        finished("duration_ms", "$3"),
        finished("error", "$4"),
        finished("stdout", "$5"),
        finished("stderr", "$6"),
        finished("stdout_truncated", "$7"),
        finished("stderr_truncated", "$8"),
        finished("output_cap", "$9"),
        finished("finished_at", "$10"),
        claim_candidates("$10", "$13", " AND NOT (r.id = $11 AND r.worker_id = $12)"),
        super::sql::RUN_COLUMNS
    )
});

// Write transactions take the write lock up front (IMMEDIATE): a deferred
// transaction that reads and then writes can fail with SQLITE_BUSY at once,
// without waiting, when another writer got in between. Claims go through
// the group-commit writer (CLAIM_ONE), so no per-script lock is needed.
super::sql::sql_store!(
    SqliteStore,
    begin = "BEGIN IMMEDIATE",
    claim_candidates = CLAIM_CANDIDATES.as_str(),
    script_lock_sql = None::<&str>,
    queued_runs_sql = QUEUE_DEPTH_SQL
);

/// User `$1`'s queued runs, kept by triggers (migration 0015): one row
/// instead of a count over every queued run, on each event and manual run.
pub(super) const QUEUE_DEPTH_SQL: &str =
    "SELECT COALESCE((SELECT queued FROM queue_depth WHERE user_id = $1), 0) AS n";
