//! A user's deployed scripts: listed, inspected, rolled back, deleted, and
//! their schedules' policies changed. (Deploying is `deploy`'s.)

use std::sync::Arc;

use roost_sandbox::ToolTrigger;
use tokio::sync::broadcast;

use crate::store::{
    SchedulePatch, ScheduleRow, Script, ScriptVersion, Store, StoreError, TriggerKind, TriggerRow,
};

/// Tells who listens (agents' MCP sessions) that a user's scripts changed:
/// a deploy, a rollback or a delete, on this node.
#[derive(Clone)]
pub struct ScriptChanges(broadcast::Sender<String>);

impl Default for ScriptChanges {
    fn default() -> Self {
        // A listener that falls this far behind looks again anyway.
        Self(broadcast::channel(256).0)
    }
}

impl ScriptChanges {
    /// `user_id`'s scripts changed.
    pub fn changed(&self, user_id: &str) {
        // No listener is no error.
        let _ = self.0.send(user_id.to_string());
    }

    /// The users whose scripts change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.0.subscribe()
    }
}

/// A handler of one of the user's scripts offered to agents as a tool.
#[derive(Debug, Clone)]
pub struct ScriptTool {
    /// The name agents call it by (`<script>__<handler>`).
    pub name: String,
    /// Its script.
    pub script: Script,
    /// The handler a call runs.
    pub handler: String,
    /// What it does and takes.
    pub tool: ToolTrigger,
}

/// Why a change to a script was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The user has no such script, version or schedule.
    #[error("no such {0}")]
    NotFound(String),
    /// A schedule policy is not one of its values.
    #[error("`{field}` is one of {allowed:?}, not `{value}`")]
    InvalidPolicy {
        /// The policy.
        field: &'static str,
        /// What was asked for.
        value: String,
        /// What it may be.
        allowed: &'static [&'static str],
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user's scripts.
#[derive(Clone)]
pub struct ScriptService {
    store: Arc<dyn Store>,
    nudge: crate::subscriptions::Nudge,
    changes: ScriptChanges,
}

impl ScriptService {
    /// The scripts in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            nudge: Default::default(),
            changes: Default::default(),
        }
    }

    /// Tells `changes` of every rollback and delete.
    pub fn with_changes(mut self, changes: ScriptChanges) -> Self {
        self.changes = changes;
        self
    }

    /// The tools the user's scripts offer agents, by name. Two handlers
    /// that would share a name (`a__b` + `c` and `a` + `b__c`): the first
    /// script by name keeps it.
    pub async fn tools(&self, user_id: &str) -> Result<Vec<ScriptTool>, ScriptError> {
        let mut tools: Vec<ScriptTool> = Vec::new();
        for script in self.store.list_scripts(user_id).await? {
            for trigger in self.store.triggers(&script.id).await? {
                if trigger.kind != TriggerKind::Mcp {
                    continue;
                }
                let tool: ToolTrigger = serde_json::from_str(&trigger.spec)
                    .map_err(|e| StoreError::Corrupt(format!("a tool's trigger: {e}")))?;
                let name = crate::triggers::tool::tool_name(&script.name, &trigger.handler);
                if tools.iter().any(|t| t.name == name) {
                    continue;
                }
                tools.push(ScriptTool {
                    name,
                    script: script.clone(),
                    handler: trigger.handler,
                    tool,
                });
            }
        }
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tools)
    }

    /// Tells `nudge` when a rollback or a delete changes a user's event
    /// types (webhook subscriptions follow them).
    pub fn with_nudge(mut self, nudge: crate::subscriptions::Nudge) -> Self {
        self.nudge = nudge;
        self
    }

    /// The user's scripts, by name.
    pub async fn list(&self, user_id: &str) -> Result<Vec<Script>, ScriptError> {
        Ok(self.store.list_scripts(user_id).await?)
    }

    /// One of the user's scripts, with its current version's triggers.
    pub async fn get(
        &self,
        user_id: &str,
        script_id: &str,
    ) -> Result<(Script, Vec<TriggerRow>), ScriptError> {
        let script = self.script(user_id, script_id).await?;
        let triggers = self.store.triggers(&script.id).await?;
        Ok((script, triggers))
    }

    /// A script's versions, newest first.
    pub async fn versions(
        &self,
        user_id: &str,
        script_id: &str,
    ) -> Result<Vec<ScriptVersion>, ScriptError> {
        self.script(user_id, script_id).await?;
        Ok(self.store.list_versions(user_id, script_id).await?)
    }

    /// Makes an earlier `version` current again, with the triggers it declares.
    pub async fn roll_back(
        &self,
        user_id: &str,
        script_id: &str,
        version: i64,
    ) -> Result<Script, ScriptError> {
        let missing = || ScriptError::NotFound(format!("version {version} of this script"));
        let versions = self.store.list_versions(user_id, script_id).await?;
        let chosen = versions
            .iter()
            .find(|v| v.version == version)
            .ok_or_else(missing)?;
        let metadata = serde_json::from_value(chosen.metadata.clone())
            .map_err(|e| StoreError::Corrupt(format!("version metadata: {e}")))?;
        let triggers = crate::deploy::triggers_of(&metadata);
        let script = self
            .store
            .set_current_version(user_id, script_id, version, &triggers)
            .await?
            .ok_or_else(missing)?;
        self.nudge.user(user_id);
        self.changes.changed(user_id);
        Ok(script)
    }

    /// Deletes one of the user's scripts (its pending runs are cancelled).
    pub async fn delete(&self, user_id: &str, script_id: &str) -> Result<(), ScriptError> {
        match self.store.delete_script(user_id, script_id).await? {
            true => {
                self.nudge.user(user_id);
                self.changes.changed(user_id);
                Ok(())
            }
            false => Err(ScriptError::NotFound("script".into())),
        }
    }

    /// A script's schedules.
    pub async fn schedules(
        &self,
        user_id: &str,
        script_id: &str,
    ) -> Result<Vec<ScheduleRow>, ScriptError> {
        self.script(user_id, script_id).await?;
        Ok(self
            .store
            .schedules(Some(user_id))
            .await?
            .into_iter()
            .filter(|s| s.script_id == script_id)
            .collect())
    }

    /// Changes a schedule's policies.
    pub async fn update_schedule(
        &self,
        user_id: &str,
        script_id: &str,
        handler: &str,
        patch: &SchedulePatch,
    ) -> Result<ScheduleRow, ScriptError> {
        const CATCH_UP: &[&str] = &["skip", "run_once"];
        const OVERLAP: &[&str] = &["skip", "allow"];
        for (field, value, allowed) in [
            ("catch_up", &patch.catch_up, CATCH_UP),
            ("overlap", &patch.overlap, OVERLAP),
        ] {
            if let Some(value) = value
                && !allowed.contains(&value.as_str())
            {
                return Err(ScriptError::InvalidPolicy {
                    field,
                    value: value.clone(),
                    allowed,
                });
            }
        }
        self.store
            .update_schedule(user_id, script_id, handler, patch)
            .await?
            .ok_or_else(|| ScriptError::NotFound(format!("schedule `{handler}` of this script")))
    }

    async fn script(&self, user_id: &str, script_id: &str) -> Result<Script, ScriptError> {
        self.store
            .get_script(user_id, script_id)
            .await?
            .ok_or_else(|| ScriptError::NotFound("script".into()))
    }
}
