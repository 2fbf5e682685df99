//! Persistence behind one trait, [`Store`], made of one trait per kind of
//! data (users, credentials, scripts, runs, …) and the run queue's. SQLite
//! (the embedded default) and PostgreSQL (for several nodes) share the
//! code of every kind but the queue (engine.rs); each has a queue of its
//! own (sqlite/queue.rs, postgres/queue.rs).

mod alerts;
mod audit;
mod calls;
mod credentials;
mod engine;
mod events;
pub(crate) mod flow;
mod http_endpoints;
mod ids;
mod integrations;
mod kinds;
mod leases;
mod messages;
mod models;
mod nodes;
mod overview;
mod paging;
mod postgres;
mod queue;
mod queue_room;
mod replay;
mod rows;
mod run_stats;
mod runs;
mod schedules;
mod scripts;
mod sqlite;
mod state;
mod stored_names;
mod subscriptions;
mod tokens;
mod users;
mod web_sessions;
mod write_once;

pub use alerts::{
    AlertGroup, AlertMessage, AlertSettings, AlertStore, Failure, GroupHit, RUN_FAILED,
};
pub use audit::AuditStore;
pub use calls::CallStore;
pub use credentials::CredentialStore;
pub use events::EventStore;
pub use http_endpoints::{HttpEndpoint, HttpEndpointStore, SealedSecret};
pub use ids::{id_time, new_id};
pub use integrations::IntegrationStore;
pub use kinds::*;
pub use leases::LeaseStore;
pub use messages::{MessageFilter, MessageRow, MessageStore};
pub use models::*;
pub use nodes::NodeStore;
pub use overview::OverviewStore;
pub use paging::*;
pub use queue::{PartialOutput, QueueNotice, RunQueue};
pub use queue_room::*;
pub use replay::{
    ReplayFilter, ReplayOutcome, ReplayPlan, Replayed, ReplayedRun, SkipReason, SkippedRun,
};
pub use run_stats::{
    EndedDuration, LOOKBACK_MS, MINUTE_MS, MinuteCount, RunStatsStore, RunsByMinute, StatsWindow,
};
pub use runs::RunStore;
pub use schedules::ScheduleStore;
pub use scripts::ScriptStore;
pub use state::{
    MAX_STATE_KEY_BYTES, MAX_STATE_TTL_SECONDS, MAX_STATE_VALUE_BYTES, StateChange, StateEntry,
    StateQuota, StateRefused, StateStore, StateUsage, StateWrites, StateWritten, canonical_json,
    state_entry_size, state_expiry, state_key_problem,
};
pub use subscriptions::{SubscriptionKey, SubscriptionRow, SubscriptionStore};
pub use tokens::{NewToken, TokenGrant, TokenRow, TokenStore};
pub use users::UserStore;
pub use web_sessions::{WebSession, WebSessionStore};
pub use write_once::*;

use postgres::PostgresStore;
use sqlite::SqliteStore;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (for example a user name taken).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// SQLite's writer thread failed (its own connection, outside sqlx).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// SQLite's writer thread could not start, or has stopped.
    #[error("the SQLite writer {0}")]
    Writer(String),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The user already has as many scripts as allowed; nothing was written.
    #[error("{scripts} scripts, the most allowed")]
    ScriptQuota {
        /// How many the user has.
        scripts: i64,
    },
    /// The user already has as many runs queued as allowed; nothing was
    /// written.
    #[error("{queued} runs are queued, the most allowed")]
    QueueFull {
        /// How many were queued.
        queued: i64,
    },
    /// The user's runs would keep more payload bytes than allowed; nothing
    /// was written.
    #[error(
        "the runs keep {stored} bytes of payload; {incoming} more would pass the {limit} allowed"
    )]
    PayloadQuotaFull {
        /// What the user's runs keep now.
        stored: i64,
        /// What the refused write would have added.
        incoming: i64,
        /// The cap.
        limit: i64,
    },
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything roost keeps in its database: every kind of data, and the
/// run queue.
pub trait Store:
    UserStore
    + TokenStore
    + AlertStore
    + LeaseStore
    + IntegrationStore
    + CredentialStore
    + ScriptStore
    + RunStore
    + RunStatsStore
    + RunQueue
    + EventStore
    + ScheduleStore
    + CallStore
    + AuditStore
    + MessageStore
    + StateStore
    + HttpEndpointStore
    + SubscriptionStore
    + NodeStore
    + WebSessionStore
    + OverviewStore
    + 'static
{
}

// Each engine's store is every kind of data and the queue.
impl Store for SqliteStore {}
impl Store for PostgresStore {}

/// Opens the store named by a database URL (`sqlite://…` or `postgres://…`)
/// and applies its migrations.
pub async fn connect(database_url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(
            PostgresStore::connect(database_url).await?,
        ))
    } else {
        Ok(std::sync::Arc::new(
            SqliteStore::connect(database_url).await?,
        ))
    }
}

/// Opens (creating if needed) a SQLite store whose write-ahead log is
/// rewound once it holds more than `wal_limit` bytes instead of 128 MiB:
/// less disk for more frequent stalls of a few milliseconds under
/// sustained writes.
pub async fn connect_sqlite_with_wal_limit(
    url: &str,
    wal_limit: u64,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    Ok(std::sync::Arc::new(
        SqliteStore::connect_with_wal_limit(url, wal_limit).await?,
    ))
}

/// Milliseconds since the Unix epoch, the time format of every table.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
