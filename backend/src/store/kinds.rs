//! The few-valued things the store keeps: where a run is, what starts it,
//! whether a credential still works.

super::stored_names::stored_names! {
    /// Whether a stored credential still works, as far as roost knows.
    pub enum CredentialStatus ("credential status") {
        /// Stored, and not refused.
        #[default]
        Connected = "connected",
        /// An OAuth token the provider refused, or whose refresh failed for
        /// good: the user connects again.
        ReconnectNeeded = "reconnect_needed",
        /// A key (not OAuth) the provider refused with a 401.
        Rejected = "rejected",
    }
}

super::stored_names::stored_names! {
    /// What starts a handler's runs.
    pub enum TriggerKind ("trigger kind") {
        /// A request (`POST /v1/scripts/{id}/run`, `roost start`).
        #[default]
        Manual = "manual",
        /// A cron schedule.
        Schedule = "schedule",
        /// An event of one type (posted, or from a webhook).
        Event = "event",
        /// An HTTP request to a handler's URL.
        Http = "http",
        /// An agent's call of a handler offered as an MCP tool.
        Mcp = "mcp",
    }
}

super::stored_names::stored_names! {
    /// Where a run is in its life.
    pub enum RunStatus ("run status") {
        /// Waiting for a worker.
        #[default]
        Queued = "queued",
        /// Claimed by a worker.
        Running = "running",
        /// Exited 0.
        Succeeded = "succeeded",
        /// Exited non-zero, trapped, or could not start.
        Failed = "failed",
        /// Hit its wall-clock limit.
        TimedOut = "timed_out",
        /// Hit another limit (memory, output, fuel, stack).
        LimitExceeded = "limit_exceeded",
        /// Cancelled by the user, or its script was deleted.
        Cancelled = "cancelled",
    }
}

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

super::stored_names::stored_names! {
    /// Why a run waited to start, beyond waiting for a free worker.
    pub enum WaitReason ("wait reason") {
        /// It was asked for at a later time (`run_at`, `delay`, a script's
        /// `runs::schedule`).
        #[default]
        RunAt = "run_at",
        /// It is a retry, waiting out its backoff.
        Retry = "retry",
        /// Its handler is debounced: it waited for its key's burst of
        /// events to go quiet.
        Debounce = "debounce",
        /// Its handler is throttled: it waited for its key's turn.
        Throttle = "throttle",
        /// Its handler has a concurrency limit per key: it was queued
        /// behind as many runs of its key as the limit lets run at once.
        Concurrency = "concurrency",
    }
}

impl WaitReason {
    /// The reason in a sentence, for pages.
    pub fn describe(self) -> &'static str {
        match self {
            WaitReason::RunAt => "it was asked for at a later time",
            WaitReason::Retry => "it is a retry, waiting out its backoff",
            WaitReason::Debounce => {
                "debounced: it waited for its key's burst of events to go quiet"
            }
            WaitReason::Throttle => "throttled: it waited for its key's turn",
            WaitReason::Concurrency => {
                "concurrency limit: it waited for earlier runs of its key to end"
            }
        }
    }
}

super::stored_names::stored_names! {
    /// What an API token may do. Reading is every `GET`; the others are
    /// the writes of their kind.
    pub enum Scope ("token scope") {
        /// Read scripts, runs, logs, events, credentials' status.
        #[default]
        Read = "read",
        /// Deploy, roll back and delete scripts; store credentials and
        /// state; everything that changes what runs.
        Deploy = "deploy",
        /// Start and cancel runs (and replay them).
        Run = "run",
        /// Post events.
        Events = "events",
    }
}

impl Scope {
    /// Scopes from their stored form, `read,run` (each once, in
    /// declaration order); an empty or unknown name is an error.
    pub fn parse_list(list: &str) -> Result<Vec<Scope>, String> {
        let mut scopes = Vec::new();
        for name in list.split(',').map(str::trim) {
            let scope: Scope = name.parse()?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        scopes.sort_by_key(|scope| Scope::ALL.iter().position(|s| s == scope));
        Ok(scopes)
    }

    /// The stored form of `scopes` (see `parse_list`).
    pub fn join(scopes: &[Scope]) -> String {
        let names: Vec<&str> = Scope::ALL
            .iter()
            .filter(|scope| scopes.contains(scope))
            .map(|scope| scope.as_str())
            .collect();
        names.join(",")
    }
}
