use serde::Serialize;

use super::{
    CredentialStatus, PageAfter, RunEffects, RunStatus, ScriptCaps, TriggerKind, WaitReason,
};

/// A roost user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Stable id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Creation time (Unix ms).
    pub created_at: i64,
}

/// A stored integration definition.
#[derive(Debug, Clone)]
pub struct DefinitionRow {
    /// Integration id.
    pub integration_id: String,
    /// Semantic version of the definition.
    pub version: String,
    /// The definition as JSON.
    pub definition: String,
    /// Last upsert (Unix ms).
    pub updated_at: i64,
}

/// One encrypted credential value. Never holds plaintext.
#[derive(Clone)]
pub struct CredentialRow {
    /// Owner.
    pub user_id: String,
    /// Integration the value belongs to.
    pub integration_id: String,
    /// Credential key from the integration's spec (`access_token`, `api_key`…).
    pub cred_key: String,
    /// Id of the master key that encrypted it.
    pub key_id: String,
    /// AES-GCM nonce (96 bits).
    pub nonce: Vec<u8>,
    /// Ciphertext with its authentication tag.
    pub ciphertext: Vec<u8>,
    /// Where the provider expects the value (JSON of the definition's placement).
    pub placement: Option<String>,
    /// Whether it still works, as far as roost knows.
    pub status: CredentialStatus,
    /// Last write (Unix ms).
    pub updated_at: i64,
    /// When an OAuth access token expires (Unix ms).
    pub expires_at: Option<i64>,
}

/// A pending OAuth authorization (the `state` parameter's server side).
#[derive(Clone)]
pub struct OAuthStateRow {
    /// The random `state` sent to the provider.
    pub state: String,
    /// Who is connecting.
    pub user_id: String,
    /// What they connect.
    pub integration_id: String,
    /// Master key id of the encrypted PKCE verifier.
    pub key_id: String,
    /// Nonce of the encrypted verifier.
    pub nonce: Vec<u8>,
    /// The encrypted PKCE verifier.
    pub ciphertext: Vec<u8>,
    /// Redirect URI sent with the authorization request.
    pub redirect_uri: String,
    /// Expiry (Unix ms).
    pub expires_at: i64,
    /// Creation (Unix ms).
    pub created_at: i64,
    /// Id of the setup link the authorization started from.
    pub link_id: Option<String>,
}

impl std::fmt::Debug for CredentialRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ciphertext is not secret, but nothing credential-shaped is
        // worth printing.
        f.debug_struct("CredentialRow")
            .field("user_id", &self.user_id)
            .field("integration_id", &self.integration_id)
            .field("cred_key", &self.cred_key)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A script (the stable identity across versions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Script {
    /// Stable id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Name, unique per user.
    pub name: String,
    /// Version runs use.
    pub current_version: i64,
    /// First deploy (Unix ms).
    pub created_at: i64,
    /// Last deploy or rollback (Unix ms).
    pub updated_at: i64,
}

/// One immutable version of a script.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptVersion {
    /// Script id.
    pub script_id: String,
    /// Version number, from 1.
    pub version: i64,
    /// SHA-256 of the component.
    pub content_hash: String,
    /// Script metadata (handlers, triggers, integrations) as JSON.
    pub metadata: serde_json::Value,
    /// Deploy time (Unix ms).
    pub created_at: i64,
}

/// A trigger of a script's current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerRow {
    /// Handler it runs.
    pub handler: String,
    /// What starts it.
    pub kind: TriggerKind,
    /// Cron expression or event type (empty for manual).
    pub spec: String,
    /// IANA timezone for schedules.
    pub timezone: Option<String>,
    /// How the queue paces the handler's runs (a `FlowControl` as JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
}

/// What a deploy stores.
#[derive(Debug, Clone)]
pub struct NewScriptVersion {
    /// Owner.
    pub user_id: String,
    /// Script name (the script is created on first deploy).
    pub name: String,
    /// Component bytes.
    pub component: Vec<u8>,
    /// SHA-256 of the component.
    pub content_hash: String,
    /// Metadata as JSON.
    pub metadata: serde_json::Value,
    /// Triggers of this version.
    pub triggers: Vec<TriggerRow>,
    /// Retry policy to set on the script (None keeps the current one).
    pub retries: Option<RetryPolicy>,
    /// Run limits to set on the script (None keeps the current ones).
    pub limits: Option<ScriptLimits>,
    /// The user's caps, enforced in the deploy's transaction.
    pub caps: ScriptCaps,
}

/// Run limits a script asks for at deploy; unset ones use the server's
/// defaults. Checked against the server's maxima before they are stored.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ScriptLimits {
    /// Wall-clock limit in milliseconds.
    pub timeout_ms: Option<i64>,
    /// Linear-memory limit in bytes.
    pub memory_bytes: Option<i64>,
    /// Output cap per stream in bytes.
    pub output_bytes: Option<i64>,
}

/// A script's run settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScriptSettings {
    /// Retry policy.
    pub retries: RetryPolicy,
    /// Limits.
    pub limits: ScriptLimits,
}

/// How failed runs of a script are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max: i64,
    /// Also retry runs that timed out or exceeded a limit.
    #[serde(default)]
    pub on_limits: bool,
}

/// A retry to queue when a run fails.
#[derive(Debug, Clone)]
pub struct RetryPlan {
    /// Its attempt number.
    pub attempt: i64,
    /// The first attempt's run id.
    pub first_run_id: String,
    /// Not claimable before this time (Unix ms): the backoff.
    pub not_before: i64,
}

/// A run to put on the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    /// Owner.
    pub user_id: String,
    /// Script.
    pub script_id: String,
    /// Version to run.
    pub script_version: i64,
    /// Handler (None: the script's only one).
    pub handler: Option<String>,
    /// What started it.
    pub trigger_kind: TriggerKind,
    /// Cron expression or event type.
    pub trigger_spec: String,
    /// JSON payload.
    pub payload: serde_json::Value,
    /// A run at a time: not claimable before this (Unix ms).
    pub not_before: Option<i64>,
}

/// A run a node began at once, outside the queue (an HTTP request
/// answered by the node that received it): recorded as running under
/// `worker_id` once it outlasts its caller's deadline, or only with its
/// end.
#[derive(Debug, Clone)]
pub struct StartedRun {
    /// Its id, chosen when it began.
    pub id: String,
    /// What it runs.
    pub run: NewRun,
    /// The node's worker id it runs under (heartbeats, the reaper).
    pub worker_id: String,
    /// When it began (Unix ms); also when it was received.
    pub started_at: i64,
}

/// One run, queued, running or finished.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Script.
    pub script_id: String,
    /// Version run.
    pub script_version: i64,
    /// Handler.
    pub handler: Option<String>,
    /// What started it.
    pub trigger_kind: TriggerKind,
    /// Trigger detail.
    pub trigger_spec: String,
    /// Payload.
    pub payload: serde_json::Value,
    /// Where it is in its life.
    pub status: RunStatus,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// First attempt's run id, for retries.
    pub first_run_id: Option<String>,
    /// Worker holding it.
    pub worker_id: Option<String>,
    /// Last heartbeat (Unix ms).
    pub heartbeat_at: Option<i64>,
    /// Enqueued (Unix ms).
    pub queued_at: i64,
    /// Started (Unix ms).
    pub started_at: Option<i64>,
    /// Finished (Unix ms).
    pub finished_at: Option<i64>,
    /// Guest exit status.
    pub exit_code: Option<i64>,
    /// Run time in ms.
    pub duration_ms: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Whether stdout was cut at the cap.
    pub stdout_truncated: bool,
    /// Whether stderr was cut at the cap.
    pub stderr_truncated: bool,
    /// The output cap in force, per stream.
    pub output_cap: Option<i64>,
    /// A retry waits until this time (Unix ms).
    pub not_before: Option<i64>,
    /// The event that started it, for a run an event started.
    pub cause_event_id: Option<String>,
    /// Links from an outside event to this run: 0 for runs no emitted
    /// event started, its event's depth otherwise.
    pub chain_depth: i64,
    /// Why it waited (or waits) to start, when it was for more than a
    /// free worker.
    pub wait_reason: Option<WaitReason>,
    /// The run this one replays (`POST /v1/runs/replay`), if it is a replay.
    pub replay_of: Option<String>,
}

/// How a run ended, as the worker records it.
#[derive(Debug, Clone)]
pub struct RunFinish {
    /// Final status.
    pub status: RunStatus,
    /// Guest exit status.
    pub exit_code: Option<i64>,
    /// Run time in ms.
    pub duration_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
    /// stdout cut at the cap.
    pub stdout_truncated: bool,
    /// stderr cut at the cap.
    pub stderr_truncated: bool,
    /// Cap per stream.
    pub output_cap: i64,
    /// What the run did that roost owns, written in the transaction that
    /// records its end (and only if that end is recorded).
    pub effects: RunEffects,
}

/// A run a worker has finished, as it reports it to the store.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run.
    pub run_id: String,
    /// How it ended.
    pub finish: RunFinish,
    /// Its next attempt, queued if the run is recorded as anything but a
    /// success (a success whose state writes are refused at its commit is
    /// recorded as a failure).
    pub retry: Option<RetryPlan>,
    /// When the worker began it (Unix ms), written as its start where the
    /// store had not written one yet (a held start); `None`: when it was
    /// handed out.
    pub started_at: Option<i64>,
}

/// The runs a worker asks for with its reports.
#[derive(Debug, Clone)]
pub struct NextClaim {
    /// Most runs of one script running at once (see `RunQueue::claim_run`).
    pub per_script_limit: i64,
    /// Most runs handed out, to be run one after another.
    pub runs: usize,
    /// Workers on this node that could take the claimable runs now: a
    /// worker is handed at most its share of them (rounded up), so one
    /// worker does not take the few runs there are while the others wait.
    pub workers: usize,
    /// Users whose runs this claim passes over: those already running on
    /// as many of the node's workers as one user may hold.
    pub skip_users: Vec<String>,
}

/// What the store answered a worker's reports with.
#[derive(Debug, Default)]
pub struct Reported {
    /// For each report, in order: whether it was recorded (false: the run
    /// was cancelled or taken over meanwhile, and nothing changed).
    pub recorded: Vec<bool>,
    /// The runs to run next, in order.
    pub next: Vec<RunRow>,
}

/// Filters of `GET /v1/runs`.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this script's runs.
    pub script_id: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs queued before this time (Unix ms).
    pub before: Option<i64>,
    /// Only runs queued at or after this time (Unix ms).
    pub since: Option<i64>,
    /// Only runs listed after this one (the previous page's last).
    pub after: Option<PageAfter>,
    /// Page size.
    pub limit: i64,
}

/// Captured output of a run.
#[derive(Debug, Clone, Default)]
pub struct RunLogs {
    /// stdout bytes.
    pub stdout: Vec<u8>,
    /// stderr bytes.
    pub stderr: Vec<u8>,
}

/// An event to turn into runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Owner.
    pub user_id: String,
    /// Idempotency key.
    pub event_id: String,
    /// Event type (`order.created`).
    pub event_type: String,
    /// Who sent it.
    pub source: Option<String>,
    /// Handed to every subscribed handler.
    pub payload: serde_json::Value,
    /// The run that emitted it, for an event a script emitted.
    pub source_run_id: Option<String>,
    /// Links from an outside event (0) to this one.
    pub chain_depth: i64,
}

/// What ingesting an event did.
#[derive(Debug, Clone, Serialize)]
pub struct EventIngest {
    /// The event id had been seen within the window; nothing new was queued.
    pub duplicate: bool,
    /// The runs the event caused (the original ones for a duplicate).
    pub run_ids: Vec<String>,
}

/// A cron schedule of a script's current version, with its policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleRow {
    /// Script.
    pub script_id: String,
    /// Owner.
    pub user_id: String,
    /// Handler it runs.
    pub handler: String,
    /// Cron expression.
    pub cron: String,
    /// IANA timezone (UTC when absent).
    pub timezone: Option<String>,
    /// Paused schedules do not tick.
    pub paused: bool,
    /// After downtime: `skip` missed ticks, or `run_once` for the latest.
    pub catch_up: String,
    /// A tick while the previous run is unfinished: `skip` it, or `allow` stacking.
    pub overlap: String,
    /// The last tick handled (Unix ms).
    pub last_tick_at: Option<i64>,
    /// When the script was first deployed (Unix ms); no catch-up before it.
    pub created_at: i64,
}

/// Changes to a schedule's policies.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    /// Pause or resume.
    pub paused: Option<bool>,
    /// `skip` or `run_once`.
    pub catch_up: Option<String>,
    /// `skip` or `allow`.
    pub overlap: Option<String>,
}

/// One host-mediated integration call of a run. Holds no input, output or
/// credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MethodCallRow {
    /// Call id.
    pub id: String,
    /// The run that made it.
    #[serde(skip)]
    pub run_id: String,
    /// Integration id.
    pub integration: String,
    /// Method id.
    pub method: String,
    /// `ok`, or the error code (`invalid_input`, `provider_error`…).
    pub status: String,
    /// The provider's last HTTP status, when a request was sent.
    pub http_status: Option<i64>,
    /// Wall time of the call, retries and rate-limit waits included.
    pub duration_ms: i64,
    /// Requests sent (0 when refused before sending).
    pub attempts: i64,
    /// Whether a 401 led to a token refresh.
    pub refreshed: bool,
    /// What went wrong, credential values masked.
    pub error: Option<String>,
    /// When the call ended (Unix ms).
    pub created_at: i64,
}

/// A node of the cluster, as it last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRow {
    /// Node id (`node_…`); its workers are `<id>-w<n>`.
    pub id: String,
    /// Address its API listens on.
    pub address: String,
    /// roost version it runs.
    pub version: String,
    /// When it started (Unix ms).
    pub started_at: i64,
    /// Its last heartbeat (Unix ms).
    pub heartbeat_at: i64,
}

/// A received event and the runs it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    /// Event id.
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// Who sent it.
    pub source: Option<String>,
    /// When roost turned it into runs (Unix ms).
    pub received_at: i64,
    /// The runs it started.
    pub run_ids: Vec<String>,
    /// The run that emitted it, for an event a script emitted.
    pub source_run_id: Option<String>,
    /// Links from an outside event (0) to this one.
    pub chain_depth: i64,
    /// Why it started no runs, when it was stopped: `chain_limit` (too
    /// many links) or `queue_full` (its owner's queue was at its cap).
    pub stopped: Option<String>,
}

/// Cluster-wide run figures for the operator view and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Runs per status.
    pub by_status: Vec<(String, i64)>,
    /// Queued runs whose time has come.
    pub ready: i64,
    /// Running runs per worker id.
    pub running_by_worker: Vec<(String, i64)>,
}

/// An audit entry about a user's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    /// Entry id.
    pub id: String,
    /// Whose credential.
    #[serde(skip)]
    pub user_id: String,
    /// What happened (`credential.read_for_run`, …).
    pub action: String,
    /// Which integration.
    pub integration: Option<String>,
    /// The run that read it.
    pub run_id: Option<String>,
    /// More, never a value (which keys, the new key id).
    pub detail: Option<String>,
    /// When (Unix ms).
    pub at: i64,
}
