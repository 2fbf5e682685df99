//! What the dashboard shows that no single REST resource answers: scripts
//! with their next tick, last run and a day's failures; and every
//! integration a user's scripts declare with how it stands.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::deploy::DeployService;
use crate::registry::Registry;
use crate::store::{
    CredentialStatus, RunFilter, RunRow, RunStatus, Script, Store, StoreError, TriggerRow,
    now_millis,
};
use crate::triggers::schedule::Schedule;

/// A script as the scripts page lists it.
#[derive(Debug, Clone)]
pub struct ScriptSummary {
    /// The script.
    pub script: Script,
    /// Its current version's triggers.
    pub triggers: Vec<TriggerRow>,
    /// The next tick of its unpaused schedules (Unix ms).
    pub next_tick: Option<i64>,
    /// Its newest run.
    pub last_run: Option<RunRow>,
    /// Runs of the last 24 hours that failed, timed out or hit a limit.
    pub failures_24h: i64,
}

/// How an integration a script declares stands for its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Stored and working.
    Connected,
    /// The provider refused the token, or its refresh failed: connect again.
    ReconnectNeeded,
    /// The provider refused the key: enter another.
    Rejected,
    /// Never connected (or disconnected).
    Missing,
}

impl Standing {
    /// How pages and the API name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::ReconnectNeeded => "reconnect_needed",
            Self::Rejected => "rejected",
            Self::Missing => "missing",
        }
    }
}

/// One integration on the connections page.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Integration id.
    pub integration: String,
    /// Its display name.
    pub name: String,
    /// How it stands.
    pub standing: Standing,
    /// The names of the scripts that declare it.
    pub used_by: Vec<String>,
    /// A signed link to connect it (again), for this user.
    pub setup_url: String,
}

/// The dashboard's composed reads.
#[derive(Clone)]
pub struct Dashboard {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    deploy: Arc<DeployService>,
}

const DAY_MS: i64 = 24 * 3600 * 1000;

impl Dashboard {
    /// Reads `store`; setup links are signed as deploy signs them.
    pub fn new(store: Arc<dyn Store>, registry: Arc<Registry>, deploy: Arc<DeployService>) -> Self {
        Self {
            store,
            registry,
            deploy,
        }
    }

    /// The user's scripts, by name, with what the scripts page shows.
    pub async fn scripts(&self, user_id: &str) -> Result<Vec<ScriptSummary>, StoreError> {
        let now = now_millis();
        let failures: HashMap<String, i64> = self
            .store
            .failures_since(user_id, now - DAY_MS)
            .await?
            .into_iter()
            .collect();
        let schedules = self.store.schedules(Some(user_id)).await?;
        let mut summaries = Vec::new();
        for script in self.store.list_scripts(user_id).await? {
            let triggers = self.store.triggers(&script.id).await?;
            let last_run = self
                .store
                .list_runs(
                    user_id,
                    &RunFilter {
                        script_id: Some(script.id.clone()),
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await?
                .into_iter()
                .next();
            let next_tick = schedules
                .iter()
                .filter(|s| s.script_id == script.id && !s.paused)
                .filter_map(|s| Schedule::parse(&s.cron, s.timezone.as_deref()).ok())
                .filter_map(|s| {
                    s.occurrences_between(now, now + 400 * DAY_MS, 1)
                        .first()
                        .copied()
                })
                .min();
            summaries.push(ScriptSummary {
                failures_24h: failures.get(&script.id).copied().unwrap_or(0),
                script,
                triggers,
                next_tick,
                last_run,
            });
        }
        Ok(summaries)
    }

    /// Every integration the user's scripts declare, and any other they
    /// have connected, by id.
    pub async fn connections(&self, user_id: &str) -> Result<Vec<Connection>, StoreError> {
        let mut used_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, metadata) in self.store.current_metadata(user_id).await? {
            for id in metadata["integrations"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
            {
                used_by
                    .entry(id.to_string())
                    .or_default()
                    .push(name.clone());
            }
        }
        let mut stored: BTreeMap<String, CredentialStatus> = BTreeMap::new();
        for row in self.store.credentials(user_id, None).await? {
            let status = stored.entry(row.integration_id).or_insert(row.status);
            if row.status != CredentialStatus::Connected {
                *status = row.status;
            }
        }
        for id in stored.keys() {
            used_by.entry(id.clone()).or_default();
        }
        Ok(used_by
            .into_iter()
            .filter_map(|(id, used_by)| {
                let definition = self.registry.get(&id)?;
                let standing = match stored.get(&id) {
                    None => Standing::Missing,
                    Some(CredentialStatus::Connected) => Standing::Connected,
                    Some(CredentialStatus::ReconnectNeeded) => Standing::ReconnectNeeded,
                    Some(CredentialStatus::Rejected) => Standing::Rejected,
                };
                Some(Connection {
                    setup_url: self.deploy.setup_link(definition, user_id),
                    name: definition.name.clone(),
                    integration: id,
                    standing,
                    used_by,
                })
            })
            .collect())
    }

    /// Every attempt of the user's run `first_run_id`, first attempt first.
    pub async fn attempts(
        &self,
        user_id: &str,
        first_run_id: &str,
    ) -> Result<Vec<(String, i64, RunStatus)>, StoreError> {
        self.store.attempts(user_id, first_run_id).await
    }
}
