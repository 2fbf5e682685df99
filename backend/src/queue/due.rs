//! Runs at a time (and retries after their backoff) start on time: a task
//! per node sleeps until the earliest time a queued run waits for and then
//! wakes the idle workers, rather than leaving the run to their next look.
//! It looks at the store again at each poll (runs queued at other nodes,
//! debounced and throttled runs) and at once when a run at a time is
//! queued here, by a request or a script.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Runner;
use crate::store::now_millis;

impl Runner {
    /// Wakes the workers when queued runs fall due, until `stop`.
    pub(super) async fn wake_when_due(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let now = now_millis();
            let due = match self.store.next_due(now).await {
                Ok(due) => due,
                Err(err) => {
                    tracing::warn!(error = %err, "looking for runs falling due failed");
                    None
                }
            };
            let poll = self.config.poll;
            let wait = due
                .map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0)))
                .filter(|until| *until <= poll);
            tokio::select! {
                _ = tokio::time::sleep(wait.unwrap_or(poll)) => {
                    if wait.is_some() {
                        self.wake();
                    }
                }
                _ = self.due_changed.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// A run at a time was queued here: the watch looks again.
    pub(super) fn due_changed(&self) {
        self.due_changed.notify_one();
    }
}
