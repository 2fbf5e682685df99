//! Replays: a user's finished runs, picked by script, status and time,
//! queued again with their payload (`POST /v1/runs/replay`, `roost runs
//! replay`). Each replay is a first attempt of the script's current
//! version (the version a fix was deployed in), naming its original.

use std::sync::Arc;

use crate::queue::Runner;
use crate::store::{
    QueueLimits, ReplayFilter, ReplayOutcome, ReplayPlan, Replayed, RunStatus, Store, StoreError,
};

/// Runs the filter may match when the request names no `limit`.
pub const DEFAULT_LIMIT: i64 = 100;
/// The most runs one replay may match.
pub const MAX_LIMIT: i64 = 1000;

/// The statuses replayed when a request names none: the runs that did not
/// do their job. Succeeded and cancelled runs go again only when named.
pub const DEFAULT_STATUSES: &[RunStatus] = &[
    RunStatus::Failed,
    RunStatus::TimedOut,
    RunStatus::LimitExceeded,
];

/// What a user asks to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayRequest {
    /// Only this script's runs.
    pub script_id: Option<String>,
    /// Only runs that ended so (empty: `DEFAULT_STATUSES`).
    pub statuses: Vec<RunStatus>,
    /// Only runs queued at or after this time (Unix ms).
    pub since: Option<i64>,
    /// Only runs queued before this time (Unix ms).
    pub until: Option<i64>,
    /// Say what would go, and queue nothing.
    pub dry_run: bool,
    /// Most runs the filter may match (default `DEFAULT_LIMIT`).
    pub limit: Option<i64>,
}

/// Why a replay queued nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Neither a script nor a start time: that would replay everything.
    #[error(
        "name a script (`script_id`) or a start time (`since`); a replay of every run is not taken"
    )]
    FilterRequired,
    /// A status of runs that have not ended.
    #[error("only finished runs can be replayed; `{0}` runs have not ended")]
    Unfinished(RunStatus),
    /// `limit` out of range.
    #[error("`limit` is 1 to {MAX_LIMIT}, not {0}")]
    InvalidLimit(i64),
    /// `until` not after `since`.
    #[error("`until` must be after `since`")]
    EmptyRange,
    /// The filter matches more runs than the limit.
    #[error(
        "the filter matches {matched} runs, more than the limit of {limit}; narrow it (script, \
         status, since, until) or raise `limit` (at most {MAX_LIMIT})"
    )]
    TooMany {
        /// Runs matched.
        matched: i64,
        /// The limit in force.
        limit: i64,
    },
    /// The replays would pass the user's queue cap.
    #[error(
        "replaying {incoming} runs would pass your queue cap: {queued} runs are queued of the \
         {limit} this server queues; replay fewer, or retry when some have run"
    )]
    QueueFull {
        /// Runs queued now.
        queued: i64,
        /// Runs the replay would add.
        incoming: i64,
        /// The cap.
        limit: i64,
    },
    /// The store failed, or refused (the payload quota).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Replays users' runs.
#[derive(Clone)]
pub struct Replays {
    store: Arc<dyn Store>,
    runner: Arc<Runner>,
    limits: QueueLimits,
}

impl Replays {
    /// Replays queued in `runner`'s store, each admitted as a whole
    /// against `limits`.
    pub fn new(store: Arc<dyn Store>, runner: Arc<Runner>, limits: QueueLimits) -> Self {
        Self {
            store,
            runner,
            limits,
        }
    }

    /// Replays `user_id`'s runs that `request` picks, all or none.
    pub async fn replay(
        &self,
        user_id: &str,
        request: ReplayRequest,
    ) -> Result<Replayed, ReplayError> {
        if request.script_id.is_none() && request.since.is_none() {
            return Err(ReplayError::FilterRequired);
        }
        if let Some(status) = request.statuses.iter().find(|s| !s.is_terminal()) {
            return Err(ReplayError::Unfinished(*status));
        }
        let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ReplayError::InvalidLimit(limit));
        }
        if let (Some(since), Some(until)) = (request.since, request.until)
            && until <= since
        {
            return Err(ReplayError::EmptyRange);
        }
        let mut statuses = request.statuses;
        if statuses.is_empty() {
            statuses = DEFAULT_STATUSES.to_vec();
        }
        statuses.sort_by_key(|s| s.as_str());
        statuses.dedup();
        let filter = ReplayFilter {
            script_id: request.script_id,
            statuses,
            since: request.since,
            until: request.until,
        };
        let plan = ReplayPlan {
            dry_run: request.dry_run,
            limit,
            queue: self.limits,
        };
        match self.store.replay_runs(user_id, &filter, plan).await? {
            ReplayOutcome::Done(done) => {
                if !request.dry_run && !done.queued.is_empty() {
                    tracing::info!(user_id, runs = done.queued.len(), "runs replayed");
                    self.runner.wake();
                }
                Ok(done)
            }
            ReplayOutcome::TooMany { matched } => Err(ReplayError::TooMany { matched, limit }),
            ReplayOutcome::QueueFull {
                queued,
                incoming,
                limit,
            } => Err(ReplayError::QueueFull {
                queued,
                incoming,
                limit,
            }),
        }
    }
}
