//! The reaper: puts the runs of a dead worker back on the queue (or fails
//! them), and forgets what is past its retention.

use std::time::Duration;

use tokio::sync::watch;

use super::Runner;
use crate::store::now_millis;

impl Runner {
    pub(super) async fn reap(&self, mut stop: watch::Receiver<bool>) {
        // Purging scans whole tables while holding SQLite's write lock, and
        // nothing is late if it happens once a minute instead of every few
        // seconds: a run's retention is counted in days. A short retention
        // or idempotency window (tests) is honoured at half its length.
        let purge_every = Duration::from_secs(60)
            .min(self.config.retention / 2)
            .min(self.config.event_dedup_window / 2);
        let mut last_purge: Option<tokio::time::Instant> = None;
        loop {
            let stale_before = now_millis()
                - i64::try_from(self.config.stale_after.as_millis()).unwrap_or(i64::MAX);
            match self
                .store
                .requeue_stale_runs(stale_before, self.config.requeue_orphans)
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    let what = if self.config.requeue_orphans {
                        "re-queued"
                    } else {
                        "failed"
                    };
                    tracing::warn!(count = n, "{what} runs whose worker stopped heart-beating");
                    self.wake.notify_waiters();
                }
                Err(err) => tracing::error!(error = %err, "re-queuing stale runs failed"),
            }
            if last_purge.is_some_and(|at| at.elapsed() < purge_every) {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.heartbeat * 2) => continue,
                    _ = stop.changed() => return,
                }
            }
            last_purge = Some(tokio::time::Instant::now());
            let forget_before = now_millis()
                - i64::try_from(self.config.event_dedup_window.as_millis()).unwrap_or(i64::MAX);
            if let Err(err) = self.store.purge_events(forget_before).await {
                tracing::error!(error = %err, "purging old events failed");
            }
            if let Err(err) = self.store.purge_idempotency_keys(forget_before).await {
                tracing::error!(error = %err, "purging old idempotency keys failed");
            }
            let retain_after =
                now_millis() - i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX);
            match self.store.delete_old_runs(retain_after).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "deleted runs past the retention period"),
                Err(err) => tracing::error!(error = %err, "deleting old runs failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.heartbeat * 2) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
