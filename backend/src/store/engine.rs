//! One store over either SQL engine. Every kind of data but the run queue
//! is the same code for SQLite and PostgreSQL (users.rs, scripts.rs, …),
//! written once over `SqlStore<DB>`; an [`Engine`] names the few places
//! where the two engines' SQL differs. The statements use `$N`
//! placeholders, which both accept, and portable types (text, 64-bit
//! integers, blobs; times as Unix milliseconds).
//!
//! Each kind's `impl` repeats one `where` list: what that code asks of the
//! engine's sqlx driver. Rust does not carry such bounds over from a
//! trait, so they cannot be said once in `Engine`.

use sqlx::{Database, Decode, Encode, Type};

/// What differs between the engines outside the run queue.
pub(crate) trait Engine: Database {
    /// What the engine's run queue keeps beside the pool (SQLite: its
    /// writer thread; PostgreSQL: nothing).
    type Queue: Send + Sync + 'static;
    /// How a write transaction starts.
    const BEGIN: &'static str;
    /// Makes one user's deploys take turns (`$1`, the user id) where the
    /// engine's write transactions do not already.
    const USER_LOCK_SQL: Option<&'static str>;
    /// User `$1`'s share of the queue: `n`, runs queued, and `bytes`, the
    /// payload bytes they keep (counters kept by triggers, migration 0015).
    const QUEUE_DEPTH_SQL: &'static str;
    /// Run statuses whose runs have an index of their own, and how a
    /// listing names it (see `RunStore::list_runs`).
    const RUNS_IN_STATE: &'static [(&'static str, &'static str)];
    /// Tells every node, when the transaction commits, that some API
    /// tokens were revoked, where the engine can (`$1`: the user).
    const TOKENS_REVOKED_SQL: Option<&'static str> = None;
    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;
    /// Each revocation that `TOKENS_REVOKED_SQL` announced, and each time
    /// some may have been missed (a lost connection); `None` where
    /// nothing is announced (a single SQLite node revokes in process).
    fn token_revocations(
        _pool: &sqlx::Pool<Self>,
    ) -> futures_util::future::BoxFuture<
        '_,
        super::StoreResult<Option<futures_util::stream::BoxStream<'static, ()>>>,
    > {
        Box::pin(async { Ok(None) })
    }
    /// Where the reads on a run's path (its state, an HTTP handler's endpoint) go instead of the pool, if anywhere.
    fn run_reader(_queue: &Self::Queue) -> Option<&super::sqlite::RunReader> {
        None
    }
}

/// A Rust type both read from and written to a column of `DB`.
pub(crate) trait Column<DB: Database>:
    for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>
{
}

impl<T, DB: Database> Column<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>
{
}

/// The store over engine `DB`: its pool, and its run queue's own state.
pub(crate) struct SqlStore<DB: Engine> {
    pub(super) pool: sqlx::Pool<DB>,
    pub(super) queue: DB::Queue,
}

impl<DB: Engine> SqlStore<DB> {
    /// After a committed write that may have changed an HTTP handler's
    /// endpoint: what the run reader keeps of them is forgotten.
    pub(super) fn endpoints_changed(&self) {
        if let Some(reader) = DB::run_reader(&self.queue) {
            reader.endpoints_changed();
        }
    }
}

/// Maps unique-constraint violations to `StoreError::Conflict`.
pub(super) fn conflict(err: sqlx::Error, what: &str) -> super::StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            super::StoreError::Conflict(what.to_string())
        }
        _ => super::StoreError::Database(err),
    }
}
