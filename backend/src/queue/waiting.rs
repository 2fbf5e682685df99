//! Requests that wait for a run to end (`?wait`). Each answers when the
//! run's end is announced: by this node's workers, or, on PostgreSQL, by
//! the node that ran it. It also looks at the run once a second, for the
//! ends nobody announces (a run cancelled, or failed by the reaper) and for
//! notices lost while the listener reconnected. A user keeps a bounded
//! number of such requests open at each node.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::watch;

use super::Runner;
use super::user_slots::Slot;
use crate::store::{QueueNotice, RunRow, StoreError, StoreResult};

/// How often a waiting request looks at its run in case its end was not
/// announced.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// A user's place among the requests waiting on runs at this node.
pub struct WaitSlot {
    _held: Slot,
}

impl Runner {
    /// A place for one more of `user_id`'s waiting requests, or `None`
    /// while the user has `per_user_waits` of them open here.
    pub fn wait_slot(&self, user_id: &str) -> Option<WaitSlot> {
        self.waits_by_user
            .take(user_id)
            .map(|held| WaitSlot { _held: held })
    }

    /// The most requests one user keeps waiting at this node.
    pub fn waits_per_user(&self) -> usize {
        self.waits_by_user.cap()
    }

    /// Waits until the run has ended or `timeout` passes; returns its latest state.
    pub async fn wait(
        &self,
        _slot: &WaitSlot,
        user_id: &str,
        run_id: &str,
        timeout: Duration,
    ) -> StoreResult<RunRow> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before the first look, so an end in between is seen.
        let mut ended = self.finished.subscribe();
        loop {
            let run = self
                .store
                .get_run(user_id, run_id)
                .await?
                .ok_or_else(|| StoreError::Corrupt("run vanished".into()))?;
            let now = tokio::time::Instant::now();
            if run.status.is_terminal() || now >= deadline {
                return Ok(run);
            }
            let next_look = tokio::time::sleep_until((now + LOOK_EVERY).min(deadline));
            tokio::pin!(next_look);
            loop {
                tokio::select! {
                    id = ended.recv() => match id {
                        Ok(id) if id != run_id => continue,
                        // Its end, or too many ends to tell: look.
                        _ => break,
                    },
                    _ = &mut next_look => break,
                }
            }
        }
    }

    /// Passes what the store announces to this node, until `stop`: the
    /// ends of manual runs (runs that ended on other nodes) to its waiting
    /// requests, and runs queued elsewhere to its idle workers.
    pub(super) async fn relay_notices(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let mut notices = match self.store.queue_notices().await {
                Ok(Some(ends)) => ends,
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "listening for runs ended on other nodes failed; waiting requests look once a second meanwhile; trying again in 5 s");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        _ = stop.changed() => return,
                    }
                }
            };
            loop {
                tokio::select! {
                    notice = notices.next() => match notice {
                        Some(QueueNotice::RunEnded(id)) => drop(self.finished.send(id)),
                        Some(QueueNotice::RunsQueued) => self.wake(),
                        None => break,
                    },
                    _ = stop.changed() => return,
                }
            }
        }
    }
}
