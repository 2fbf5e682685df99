//! Alerts: a user hears when a run fails for good (after its last retry),
//! times out or hits a limit, and when a credential needs reconnecting —
//! in their outbox, on Slack, by email or at a signed webhook, as their
//! settings say (a default, and overrides per script).
//!
//! Failures are grouped per script into windows of `window_secs`. The first
//! failure after a window without any is sent at once; the rest of a window
//! go as one summary with their count when it ends. A script failing every
//! second with an hour's window sends one message an hour, not 3,600.
//!
//! Each node runs [`Alerts::watch`]: it scans the runs that failed since
//! the last scan (one node at a time: the store's cursor is moved by a
//! compare-and-set in the transaction that records the groups), then sends
//! what is due, each message claimed once across nodes.

mod deliver;
mod settings;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use settings::{AlertSettingsPatch, AlertsView};

use crate::store::{
    AlertGroup, AlertMessage, AlertSettings, Failure, GroupHit, Store, StoreError, now_millis,
};

/// How often a node looks for failures and due messages.
const TICK: Duration = Duration::from_secs(1);

/// A failure is read this long after its end, so that the retry its
/// finish may have queued is committed and seen.
const SETTLE_MS: i64 = 1_000;

/// Tries of one message before it is given up.
const MAX_ATTEMPTS: i64 = 8;

/// The default window: one message per script per hour at most.
pub const DEFAULT_WINDOW_SECS: i64 = 3600;

/// Why an alert operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// Settings that do not hold together (a channel without its address…).
    #[error("{0}")]
    Invalid(String),
    /// No such script of the user's.
    #[error("no script with this id")]
    NoScript,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Alerts for every user, on this node.
#[derive(Clone)]
pub struct Alerts {
    store: Arc<dyn Store>,
    deliver: Arc<deliver::Deliver>,
    allow_private_webhooks: bool,
}

impl Alerts {
    pub fn new(
        store: Arc<dyn Store>,
        connectors: Arc<crate::connectors::Connectors>,
        oauth: Arc<crate::oauth::OAuth>,
        deploy: Arc<crate::deploy::DeployService>,
        keys: Arc<crate::credentials::MasterKeys>,
        base_url: &str,
        allow_private_webhooks: bool,
    ) -> Self {
        let deliver = deliver::Deliver::new(
            store.clone(),
            connectors,
            oauth,
            deploy,
            keys,
            base_url,
            allow_private_webhooks,
        );
        Self {
            store,
            deliver: Arc::new(deliver),
            allow_private_webhooks,
        }
    }

    /// Scans and sends until `stop`.
    pub async fn watch(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if let Err(err) = self.scan().await {
                tracing::warn!(error = %err, "scanning failed runs for alerts failed; trying again");
            }
            if let Err(err) = self.send_due().await {
                tracing::warn!(error = %err, "sending alerts failed; trying again");
            }
            if let Err(err) = self.reconnects().await {
                tracing::warn!(error = %err, "alerting credentials to reconnect failed; trying again");
            }
        }
    }

    /// Groups the failures since the last scan into their windows.
    pub async fn scan(&self) -> Result<(), StoreError> {
        let to = now_millis() - SETTLE_MS;
        let Some((from, to, failures)) = self.store.failures_since_scan(to).await? else {
            return Ok(());
        };
        let mut settings: HashMap<String, Vec<AlertSettings>> = HashMap::new();
        let mut hits: Vec<GroupHit> = Vec::new();
        for failure in failures {
            if !settings.contains_key(&failure.user_id) {
                let own = self.store.alert_settings(&failure.user_id).await?;
                settings.insert(failure.user_id.clone(), own);
            }
            let effective = settings::effective(&settings[&failure.user_id], &failure.script_id);
            if !effective.enabled {
                continue;
            }
            add_hit(&mut hits, &failure, effective.window_secs.max(1) * 1000);
        }
        if !self.store.record_failures(from, to, &hits).await? {
            tracing::debug!("another node scanned these failures");
        }
        Ok(())
    }

    /// Sends every message due now, each once across nodes.
    pub async fn send_due(&self) -> Result<(), StoreError> {
        let now = now_millis();
        for group in self.store.due_alert_groups(now).await? {
            let message = if group.notify_first && group.first_sent_at.is_none() {
                AlertMessage::First
            } else {
                AlertMessage::Summary
            };
            let Some(group) = self.store.claim_alert(&group.id, message, now).await? else {
                continue;
            };
            let told = match message {
                AlertMessage::First => 1,
                AlertMessage::Summary => group.count - group.sent_count,
            };
            // A summary of nothing (the window's one failure went at once).
            if told <= 0 {
                continue;
            }
            let settings = self.store.alert_settings(&group.user_id).await?;
            let effective = settings::effective(&settings, &group.script_id);
            if let Err(err) = self
                .deliver
                .failures(&group, message, told, &effective)
                .await
            {
                if group.attempts + 1 >= MAX_ATTEMPTS {
                    tracing::warn!(alert = %group.id, error = %err, attempts = group.attempts + 1, "an alert could not be sent; given up");
                    continue;
                }
                // Backs off: 2 s, 4 s, … up to 5 min between tries.
                let wait_ms = (1_000_i64 << (group.attempts + 1).min(9)).min(300_000);
                tracing::warn!(alert = %group.id, error = %err, retry_in_ms = wait_ms, "an alert could not be sent; it goes again");
                self.store
                    .release_alert(&group.id, message, now + wait_ms)
                    .await?;
            }
        }
        Ok(())
    }

    /// Tells, once, of each credential that needs reconnecting.
    pub async fn reconnects(&self) -> Result<(), StoreError> {
        for (user_id, integration) in self.store.claim_reconnect_alerts(now_millis()).await? {
            let settings = self.store.alert_settings(&user_id).await?;
            let effective = settings::effective(&settings, "");
            if !effective.enabled {
                continue;
            }
            if let Err(err) = self
                .deliver
                .reconnect(&user_id, &integration, &effective)
                .await
            {
                tracing::warn!(user = %user_id, integration = %integration, error = %err, "a reconnect alert could not be sent");
            }
        }
        Ok(())
    }

    /// The user's settings, overrides and latest alerts.
    pub async fn view(&self, user_id: &str) -> Result<AlertsView, AlertError> {
        settings::view(self.store.as_ref(), &self.deliver, user_id).await
    }

    /// Changes the user's default (`script_id` `None`) or a script's
    /// override.
    pub async fn update(
        &self,
        user_id: &str,
        script_id: Option<&str>,
        patch: AlertSettingsPatch,
    ) -> Result<AlertSettings, AlertError> {
        settings::update(
            self.store.as_ref(),
            user_id,
            script_id,
            patch,
            self.allow_private_webhooks,
        )
        .await
    }

    /// Drops a script's override: it follows the default again.
    pub async fn reset(&self, user_id: &str, script_id: &str) -> Result<bool, AlertError> {
        Ok(self.store.delete_alert_settings(user_id, script_id).await?)
    }
}

/// Counts `failure` into its window's hit (`window_ms` long, aligned to
/// the epoch so every node computes the same windows).
fn add_hit(hits: &mut Vec<GroupHit>, failure: &Failure, window_ms: i64) {
    let window_start = failure.finished_at - failure.finished_at.rem_euclid(window_ms);
    let existing = hits.iter_mut().find(|hit| {
        hit.user_id == failure.user_id
            && hit.script_id == failure.script_id
            && hit.window_start == window_start
    });
    match existing {
        Some(hit) => {
            hit.count += 1;
            hit.last_run_id = failure.run_id.clone();
            hit.last_status = failure.status.clone();
            hit.last_error = failure.error.clone();
        }
        None => hits.push(GroupHit {
            user_id: failure.user_id.clone(),
            script_id: failure.script_id.clone(),
            subject: failure.script_name.clone(),
            window_start,
            window_end: window_start + window_ms,
            previous_start: window_start - window_ms,
            count: 1,
            last_run_id: failure.run_id.clone(),
            last_status: failure.status.clone(),
            last_error: failure.error.clone(),
        }),
    }
}

/// What a group's message says happened to its runs.
fn happened(group: &AlertGroup) -> &'static str {
    match group.last_status.as_str() {
        "timed_out" => "timed out",
        "limit_exceeded" => "hit a limit",
        _ => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(at: i64, run: &str) -> Failure {
        Failure {
            run_id: run.into(),
            user_id: "u".into(),
            script_id: "s".into(),
            script_name: "tick".into(),
            status: "failed".into(),
            error: Some("down".into()),
            finished_at: at,
        }
    }

    #[test]
    fn failures_fall_into_aligned_windows_with_their_counts() {
        let mut hits = Vec::new();
        for (at, run) in [
            (10_500, "r1"),
            (11_900, "r2"),
            (12_000, "r3"),
            (13_999, "r4"),
        ] {
            add_hit(&mut hits, &failure(at, run), 2_000);
        }
        let windows: Vec<(i64, i64, i64, &str)> = hits
            .iter()
            .map(|h| {
                (
                    h.window_start,
                    h.window_end,
                    h.count,
                    h.last_run_id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            windows,
            [(10_000, 12_000, 2, "r2"), (12_000, 14_000, 2, "r4")]
        );
        assert_eq!(hits[1].previous_start, 10_000);
    }
}
