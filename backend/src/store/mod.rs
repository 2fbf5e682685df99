//! Persistence behind one trait, with a SQLite implementation (the embedded
//! default) and a PostgreSQL one (for several nodes).
//!
//! Both implementations are generated from the same SQL (see `sql.rs`):
//! the statements use `$N` placeholders, which both engines accept, and
//! portable types (text, 64-bit integers, blobs; times as Unix milliseconds).

mod group_commit;
mod held_starts;
mod kinds;
mod models;
mod paging;
mod postgres;
mod queue_room;
mod sql;
mod sqlite;
#[cfg(test)]
mod sqlite_plans;
mod stored_names;
mod wal;
mod write_once;
mod writer_jobs;

use async_trait::async_trait;

pub use kinds::*;
pub use models::*;
pub use paging::*;
pub use postgres::PostgresStore;
pub use queue_room::*;
pub use sql::{id_time, new_id};
pub use sqlite::SqliteStore;
pub use write_once::*;

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

/// Everything roost keeps in its database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a user with one API token (given as its hash).
    async fn create_user(&self, name: &str, token_hash: &str) -> StoreResult<User>;
    /// A user by id.
    async fn get_user(&self, user_id: &str) -> StoreResult<Option<User>>;
    /// The user owning the token with this hash.
    async fn user_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<User>>;

    /// Inserts or replaces an integration definition (unique on its id).
    async fn upsert_integration_definition(&self, row: &DefinitionRow) -> StoreResult<()>;
    /// All stored integration definitions.
    async fn integration_definitions(&self) -> StoreResult<Vec<DefinitionRow>>;

    /// Writes several credential rows of one user atomically (insert or replace).
    async fn put_credentials(&self, rows: &[CredentialRow]) -> StoreResult<()>;
    /// A user's credential rows, optionally for one integration only.
    async fn credentials(
        &self,
        user_id: &str,
        integration: Option<&str>,
    ) -> StoreResult<Vec<CredentialRow>>;
    /// Deletes a user's credentials for an integration; returns how many rows went.
    async fn delete_credentials(&self, user_id: &str, integration: &str) -> StoreResult<u64>;
    /// Every credential row (for key rotation).
    async fn all_credentials(&self) -> StoreResult<Vec<CredentialRow>>;
    /// Replaces the encryption of existing rows atomically (key rotation).
    async fn reencrypt_credentials(&self, rows: &[CredentialRow]) -> StoreResult<()>;

    /// Stores a new immutable version of a script (creating the script on its
    /// first deploy), makes it current and replaces the script's triggers,
    /// all in one transaction.
    async fn create_script_version(&self, new: &NewScriptVersion) -> StoreResult<ScriptVersion>;
    /// A user's scripts.
    async fn list_scripts(&self, user_id: &str) -> StoreResult<Vec<Script>>;
    /// One script of a user.
    async fn get_script(&self, user_id: &str, script_id: &str) -> StoreResult<Option<Script>>;
    /// A script's versions, newest first (without component bytes).
    async fn list_versions(
        &self,
        user_id: &str,
        script_id: &str,
    ) -> StoreResult<Vec<ScriptVersion>>;
    /// Makes an existing version current again and restores its triggers.
    async fn set_current_version(
        &self,
        user_id: &str,
        script_id: &str,
        version: i64,
    ) -> StoreResult<Option<Script>>;
    /// Deletes a script with its versions and triggers.
    async fn delete_script(&self, user_id: &str, script_id: &str) -> StoreResult<bool>;
    /// Marks all of a user's credentials for an integration (`reconnect_needed`…).
    async fn set_credential_status(
        &self,
        user_id: &str,
        integration: &str,
        status: CredentialStatus,
    ) -> StoreResult<()>;
    /// Records a pending OAuth authorization (and sweeps expired ones).
    async fn put_oauth_state(&self, row: &OAuthStateRow) -> StoreResult<()>;
    /// Removes and returns a pending authorization: a state works once.
    async fn take_oauth_state(&self, state: &str) -> StoreResult<Option<OAuthStateRow>>;
    /// Triggers of a script's current version.
    async fn triggers(&self, script_id: &str) -> StoreResult<Vec<TriggerRow>>;
    /// A version's component bytes and metadata.
    async fn version_component(
        &self,
        script_id: &str,
        version: i64,
    ) -> StoreResult<Option<(Vec<u8>, serde_json::Value)>>;

    /// Puts a run on the queue.
    async fn enqueue_run(&self, run: &NewRun) -> StoreResult<RunRow>;
    /// Puts a run on the queue under an idempotency key, once: the first
    /// request with `key` (or the first since an earlier use older than
    /// `since`, Unix ms) queues `run` and records the key in the same
    /// transaction; a repeat queues nothing and names the first run.
    async fn enqueue_run_once(
        &self,
        run: &NewRun,
        key: &IdempotencyKey,
        since: i64,
    ) -> StoreResult<Enqueued>;
    /// The run a request with `key` queued at or after `since`, if any.
    async fn idempotent_run(
        &self,
        user_id: &str,
        key: &IdempotencyKey,
        since: i64,
    ) -> StoreResult<Option<Enqueued>>;
    /// Forgets idempotency keys used before `before` (end of the window).
    async fn purge_idempotency_keys(&self, before: i64) -> StoreResult<u64>;
    /// Claims the oldest claimable queued run for `worker_id`: never the same
    /// run for two workers, never a retry before its backoff, never a run of
    /// a script that already has `per_script_limit` runs running, never a
    /// run of a user in `skip_users`.
    async fn claim_run(
        &self,
        worker_id: &str,
        per_script_limit: i64,
        skip_users: &[String],
    ) -> StoreResult<Option<RunRow>>;
    /// The ids of manual runs as they end on any node sharing the store,
    /// where the store can announce them (PostgreSQL's LISTEN/NOTIFY);
    /// `None` where a node's own finishes are all there is (SQLite). A
    /// request waiting on a manual run (`?wait`) answers on these.
    async fn manual_run_ends(
        &self,
    ) -> StoreResult<Option<futures_util::stream::BoxStream<'static, String>>>;
    /// Records that `worker_id` still works on the run; false when the run
    /// is no longer this worker's to run (cancelled, or re-queued).
    async fn heartbeat_run(&self, run_id: &str, worker_id: &str) -> StoreResult<bool>;
    /// Records how a running run ended and, in the same transaction, writes
    /// its effects (`finish.effects`) and queues its retry if one is
    /// planned; false if it was no longer running under
    /// `worker_id` (cancelled, or re-queued after its heartbeat went stale
    /// and claimed by another worker), in which case nothing changes.
    async fn finish_run(
        &self,
        run_id: &str,
        worker_id: &str,
        finish: &RunFinish,
        retry: Option<&RetryPlan>,
    ) -> StoreResult<bool>;
    /// A worker's trip to the store: records how each of `reports` ended,
    /// in order, as `finish_run` does; gives back `unstarted`, runs it was
    /// handed and did not begin (they are claimable again at once); and,
    /// given `claim`, hands it the runs to run next, one after another.
    /// Runs are handed out several at a time only where their starts are
    /// held (see `hold_run_starts`): a run that waits in a worker's hands
    /// must not read as running, nor be failed as an orphan if the node
    /// dies. Elsewhere, and always on PostgreSQL, at most one. Reports and
    /// give-backs stand even if the claim fails; the claim then hands out
    /// nothing.
    async fn report_and_claim(
        &self,
        worker_id: &str,
        reports: Vec<RunReport>,
        unstarted: Vec<String>,
        claim: Option<NextClaim>,
    ) -> StoreResult<Reported>;
    /// Lets the store write the start of a run that `report_and_claim`
    /// hands out together with that run's end, if the run ends within
    /// `window` (one write instead of two for short runs). Until then, or
    /// until its first heartbeat, the run reads as still queued; if the
    /// server dies meanwhile it stays queued and runs again. Only for a
    /// server that re-queues orphaned runs. `Duration::ZERO` (the default)
    /// writes every start at its claim. SQLite does it; PostgreSQL ignores
    /// it (a cluster's nodes must see every claim).
    fn hold_run_starts(&self, window: std::time::Duration);
    /// A script's retry policy and limits.
    async fn script_settings(&self, script_id: &str) -> StoreResult<Option<ScriptSettings>>;
    /// Cancels a queued or running run of the user; false if it had ended.
    async fn cancel_run(&self, user_id: &str, run_id: &str) -> StoreResult<bool>;
    /// Runs whose worker stopped heart-beating before `stale_before`: put
    /// back on the queue (`requeue`), or marked failed.
    async fn requeue_stale_runs(&self, stale_before: i64, requeue: bool) -> StoreResult<u64>;
    /// One run of the user.
    async fn get_run(&self, user_id: &str, run_id: &str) -> StoreResult<Option<RunRow>>;
    /// The user's runs, newest first.
    async fn list_runs(&self, user_id: &str, filter: &RunFilter) -> StoreResult<Vec<RunRow>>;
    /// Records an event and queues one run per subscribed handler of the
    /// user's scripts, in one transaction; a repeated event id queues nothing.
    async fn ingest_event(&self, event: &NewEvent) -> StoreResult<EventIngest>;
    /// `ingest_event`, refused with [`StoreError::QueueFull`] while the
    /// user has `limits.runs` runs or more queued, and with
    /// [`StoreError::PayloadQuotaFull`] if the runs' payloads would pass
    /// `limits.payload_bytes`. A repeated event id is answered as a repeat,
    /// full queue or not. The check and the ingest are one transaction; on
    /// PostgreSQL events arriving together may pass the caps by a few.
    async fn ingest_event_within(
        &self,
        event: &NewEvent,
        limits: QueueLimits,
    ) -> StoreResult<EventIngest>;
    /// Forgets events (and webhook deliveries) received before `before`
    /// (end of the idempotency window).
    async fn purge_events(&self, before: i64) -> StoreResult<u64>;
    /// The schedules of scripts' current versions: one user's, or everyone's.
    async fn schedules(&self, user_id: Option<&str>) -> StoreResult<Vec<ScheduleRow>>;
    /// Handles one tick of a schedule: at most one run per (script, handler,
    /// tick) ever, none while paused, none while the previous one is
    /// unfinished if the overlap policy says skip. Returns the run queued.
    async fn record_tick(
        &self,
        script_id: &str,
        handler: &str,
        tick_at: i64,
    ) -> StoreResult<Option<RunRow>>;
    /// Changes a schedule's policies; None if the user has no such schedule.
    async fn update_schedule(
        &self,
        user_id: &str,
        script_id: &str,
        handler: &str,
        patch: &SchedulePatch,
    ) -> StoreResult<Option<ScheduleRow>>;
    /// Deletes finished runs (and handled ticks) older than `before`; returns the runs deleted.
    async fn delete_old_runs(&self, before: i64) -> StoreResult<u64>;
    /// A run's captured output.
    async fn run_logs(&self, user_id: &str, run_id: &str) -> StoreResult<Option<RunLogs>>;
    /// Records that node `row.id` is alive (insert or update).
    async fn node_heartbeat(&self, row: &NodeRow) -> StoreResult<()>;
    /// Every node that ever reported, latest heartbeat first.
    async fn nodes(&self) -> StoreResult<Vec<NodeRow>>;
    /// Forgets nodes silent since before `before` (Unix ms).
    async fn forget_nodes(&self, before: i64) -> StoreResult<u64>;
    /// Run counts for the operator view and metrics.
    async fn run_stats(&self, now: i64) -> StoreResult<RunStats>;
    /// One of the user's received events.
    async fn get_event(&self, user_id: &str, event_id: &str) -> StoreResult<Option<EventRow>>;
    /// Records the provider account (`account_id`, and `app_id` where the
    /// provider has one) user `user_id`'s `integration` connection is for.
    async fn bind_account(
        &self,
        user_id: &str,
        integration: &str,
        account_id: &str,
        app_id: Option<&str>,
    ) -> StoreResult<()>;
    /// The (account id, app id) a user's connection of `integration` is for.
    async fn bound_account(
        &self,
        user_id: &str,
        integration: &str,
    ) -> StoreResult<Option<(String, Option<String>)>>;
    /// Records webhook delivery `delivery_id` of `source` for `user_id` if
    /// it is new; returns the user it was first delivered for.
    async fn claim_delivery(
        &self,
        source: &str,
        delivery_id: &str,
        user_id: &str,
    ) -> StoreResult<String>;
    /// Whether a credential was already stored through the setup link
    /// with this id.
    async fn setup_link_spent(&self, link_id: &str) -> StoreResult<bool>;
    /// Writes credential rows of one user through setup link `link`,
    /// spending it, in one transaction. Nothing is written if the link was
    /// spent already, or if the integration is connected (and working)
    /// with a value stored after the link was issued.
    async fn put_credentials_through_link(
        &self,
        rows: &[CredentialRow],
        link: &LinkUse,
    ) -> StoreResult<LinkWrite>;
    /// How many of the user's runs are queued.
    /// How much of the queue `user_id` fills: runs queued, and bytes of
    /// payload their runs keep.
    async fn queue_depth(&self, user_id: &str) -> StoreResult<QueueDepth>;
    /// Appends audit entries.
    async fn insert_audit(&self, entries: &[AuditRow]) -> StoreResult<()>;
    /// A user's audit trail, newest first.
    async fn list_audit(&self, user_id: &str, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>>;
    /// Records a host-mediated integration call of a run.
    async fn insert_method_call(&self, call: &MethodCallRow) -> StoreResult<()>;
    /// The recorded calls of a run, oldest first.
    async fn method_calls(&self, run_id: &str) -> StoreResult<Vec<MethodCallRow>>;
    /// A user's outbox, newest first.
    async fn list_messages(
        &self,
        user_id: &str,
        filter: &MessageFilter,
    ) -> StoreResult<Vec<MessageRow>>;
}

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

/// Milliseconds since the Unix epoch, the time format of every table.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
