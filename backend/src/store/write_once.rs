//! The rules a write is held to so it happens once, or within a cap:
//! manual runs under an idempotency key, credentials through a setup link,
//! deploys within the user's script and version caps.

use super::{MessageRow, RunRow, StateWrites};

/// An `Idempotency-Key` of a manual run request, with a hash of what was
/// asked (script, handler, payload).
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// The client's key.
    pub key: String,
    /// Hex SHA-256 of the request it came with.
    pub request_hash: String,
}

/// What a request under an idempotency key got.
#[derive(Debug, Clone)]
pub enum Enqueued {
    /// The key is new: this run was queued.
    New(Box<RunRow>),
    /// The key was used within the window: the run its first request
    /// queued, and whether this request asked for the same thing.
    Repeat {
        /// The first request's run.
        run_id: String,
        /// The two requests' hashes match.
        same_request: bool,
    },
}

/// Per-user caps a deploy is held to inside its transaction, so deploys
/// arriving together cannot pass them.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScriptCaps {
    /// Most scripts a user may have (a new script past it is refused).
    pub max_scripts: Option<i64>,
    /// Most versions kept per script: the oldest beyond it are deleted.
    pub max_versions: Option<i64>,
}

/// The setup link a credential is stored through, spent by the write.
#[derive(Debug, Clone)]
pub struct LinkUse {
    /// The link's id (`lnk_…`).
    pub id: String,
    /// When the link was issued (Unix ms).
    pub issued_at: i64,
    /// Until when its spent mark is kept (Unix ms): past the link's expiry.
    pub keep_until: i64,
}

impl LinkUse {
    /// The use of link `id` (issued when its id says), its spent mark kept
    /// until `keep_until`.
    pub fn new(id: &str, keep_until: i64) -> Self {
        Self {
            id: id.to_string(),
            issued_at: super::id_time(id).unwrap_or(0),
            keep_until,
        }
    }
}

/// What a write through a setup link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkWrite {
    /// The credential was stored and the link spent.
    Stored,
    /// The link was spent already: nothing written.
    Spent,
    /// The integration was connected again after the link was issued (with
    /// another link, or the API): the older link writes nothing.
    Superseded,
}

/// The writes a run asks of roost itself, kept aside while it runs and
/// committed with its outcome: a run that crashes or is executed again
/// leaves them once, never twice. The worker hands them over only for a
/// run that succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunEffects {
    /// The run's script, whose state `state` writes.
    pub script_id: String,
    /// Messages for the user's outbox.
    pub messages: Vec<MessageRow>,
    /// The script's state writes, checked when they are written: if
    /// another writer changed what a `compare_and_set` saw, or the quota
    /// would be passed, none of the run's effects are written and the run
    /// is recorded as failed (and retried as a failure would be).
    pub state: StateWrites,
    /// What an HTTP-triggered run answered its caller.
    pub http_response: Option<HttpReply>,
    /// Events the run emitted: recorded, and their runs queued, with the
    /// run's success.
    pub emitted: Vec<Emitted>,
    /// The owner's queue caps, which an emitted event's runs must fit.
    pub queue_limits: Option<super::QueueLimits>,
    /// Runs the run asked for at a time: queued with its success.
    pub scheduled: Vec<ScheduledRun>,
}

/// A run a run asked for (`roost_sdk::runs::schedule`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRun {
    /// Its id, told to the script when it asked.
    pub id: String,
    /// The run, with its time.
    pub run: super::NewRun,
    /// One link deeper than the run that asked.
    pub chain_depth: i64,
}

impl RunEffects {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.state.is_empty()
            && self.http_response.is_none()
            && self.emitted.is_empty()
            && self.scheduled.is_empty()
    }
}

/// An event a run emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    /// The event, with the run as its source.
    pub event: super::NewEvent,
    /// Past the chain limit: recorded as stopped, starting nothing.
    pub past_chain_limit: bool,
}

/// An HTTP-triggered run's response, recorded with its success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpReply {
    /// HTTP status.
    pub status: u16,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The headers as stored: a JSON array of `[name, value]` pairs.
    pub fn headers_json(&self) -> String {
        serde_json::to_string(&self.headers).expect("strings serialise")
    }
}
