//! How much of the queue a user may fill, and the check before a new run.

use super::{Store, StoreError, StoreResult};

/// How much of the queue a user may fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Runs queued at once.
    pub runs: i64,
    /// Bytes of payload kept in the user's runs, queued or past (each run
    /// keeps a copy of its event's payload for the retention period).
    pub payload_bytes: i64,
}

/// How much of the queue a user fills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Runs queued.
    pub runs: i64,
    /// Bytes of payload kept in the user's runs.
    pub payload_bytes: i64,
}

impl QueueLimits {
    /// Whether runs adding `incoming` payload bytes fit beside `depth`.
    pub fn admit(&self, depth: QueueDepth, incoming: i64) -> StoreResult<()> {
        if depth.runs >= self.runs {
            return Err(StoreError::QueueFull { queued: depth.runs });
        }
        if incoming > 0 && depth.payload_bytes.saturating_add(incoming) > self.payload_bytes {
            return Err(StoreError::PayloadQuotaFull {
                stored: depth.payload_bytes,
                incoming,
                limit: self.payload_bytes,
            });
        }
        Ok(())
    }
}

/// Refuses with [`StoreError::QueueFull`] while the user has `limits.runs`
/// runs or more queued, and with [`StoreError::PayloadQuotaFull`] if
/// `incoming` more payload bytes would pass `limits.payload_bytes`: the
/// check before a new run where the store cannot make it part of the write
/// (manual runs, and events published to a cluster's stream).
pub async fn check_queue_room(
    store: &dyn Store,
    user_id: &str,
    limits: QueueLimits,
    incoming: i64,
) -> StoreResult<()> {
    limits.admit(store.queue_depth(user_id).await?, incoming)
}
