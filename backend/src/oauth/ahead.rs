//! Connection health: OAuth access tokens refreshed in the background
//! before they expire, so runs seldom wait on a refresh, and a refresh
//! token the provider no longer takes is found before a run needs it (the
//! credential turns `reconnect_needed`, which alerts the user once; see
//! `crate::alerts`). One node of a cluster does it at a time (a lease), so
//! a rotating refresh token is never spent twice by two nodes at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::OAuth;
use crate::registry::Registry;
use crate::store::{Store, now_millis};

/// The lease's name, and how long one node holds it between looks.
const LEASE: &str = "oauth-refresh-ahead";

/// Refreshes, ahead of use, the OAuth tokens of every user.
pub struct RefreshAhead {
    pub oauth: Arc<OAuth>,
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    /// This node, as the lease's holder.
    pub node_id: String,
    /// How often it looks.
    pub every: Duration,
    /// How far ahead of expiry a token is refreshed.
    pub ahead: Duration,
}

impl RefreshAhead {
    /// Looks every `every` until `stop`.
    pub async fn watch(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if let Err(err) = self.look().await {
                tracing::warn!(error = %err, "refreshing OAuth tokens ahead of use failed; trying again");
            }
        }
    }

    /// One look: refreshes each token that expires within `ahead`, if this
    /// node holds the lease.
    pub async fn look(&self) -> Result<(), crate::store::StoreError> {
        let now = now_millis();
        let hold = i64::try_from(self.every.as_millis()).unwrap_or(60_000) * 3;
        if !self
            .store
            .take_lease(LEASE, &self.node_id, now + hold, now)
            .await?
        {
            return Ok(());
        }
        let before = now + i64::try_from(self.ahead.as_millis()).unwrap_or(i64::MAX / 2);
        for (user_id, integration) in self.store.expiring_credentials(before).await? {
            let Some(definition) = self.registry.get(&integration) else {
                continue;
            };
            // A refused refresh marks the credential itself; any other
            // failure is tried again at the next look.
            if let Err(err) = self
                .oauth
                .refresh_within(&user_id, definition, self.ahead)
                .await
            {
                tracing::warn!(user = %user_id, integration = %integration, error = %err, "a token could not be refreshed ahead of use");
            }
        }
        Ok(())
    }
}
