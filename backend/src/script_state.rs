//! A script's state as its user (or an operator on their behalf) reads and
//! resets it: `/v1/scripts/{id}/state` and `roost state`. Writes here are
//! checked against the same rules and quota as a run's, and take turns
//! with runs' commits (store/state.rs).

use std::sync::Arc;

use serde_json::Value;

use crate::store::{
    MAX_STATE_TTL_SECONDS, MAX_STATE_VALUE_BYTES, StateChange, StateEntry, StateQuota,
    StateRefused, StateUsage, StateWrites, StateWritten, Store, StoreError, canonical_json,
    now_millis, state_expiry, state_key_problem,
};

/// Why a state request was refused.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The user has no such script, or the script no such key.
    #[error("no such {0}")]
    NotFound(String),
    /// The key is not a key.
    #[error("{0}")]
    InvalidKey(String),
    /// The value, or its expiry, is not allowed.
    #[error("{0}")]
    InvalidValue(String),
    /// The value is larger than a value may be.
    #[error("the value takes {0} bytes as JSON; a value takes at most {MAX_STATE_VALUE_BYTES}")]
    TooLarge(usize),
    /// The write would pass the script's quota.
    #[error(transparent)]
    Quota(StateRefused),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page of a script's state.
#[derive(Debug, Clone)]
pub struct StatePage {
    /// The entries, in key order.
    pub entries: Vec<StateEntry>,
    /// The key to ask for the next page after, if there may be more.
    pub next: Option<String>,
    /// What the script's state takes.
    pub usage: StateUsage,
}

/// Scripts' state.
#[derive(Clone)]
pub struct StateService {
    store: Arc<dyn Store>,
    quota: StateQuota,
}

impl StateService {
    /// Scripts' state in `store`, each held to `quota`.
    pub fn new(store: Arc<dyn Store>, quota: StateQuota) -> Self {
        Self { store, quota }
    }

    /// The quota every script's state is held to.
    pub fn quota(&self) -> StateQuota {
        self.quota
    }

    /// Entries of the user's script whose keys start with `prefix`, after
    /// `after`, at most `limit`.
    pub async fn list(
        &self,
        user_id: &str,
        script_id: &str,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<StatePage, StateError> {
        self.script(user_id, script_id).await?;
        let entries = self
            .store
            .state_entries(script_id, prefix, after, limit)
            .await?;
        let next = (entries.len() as i64 == limit)
            .then(|| entries.last().map(|e| e.key.clone()))
            .flatten();
        let usage = self.store.state_usage(script_id).await?;
        Ok(StatePage {
            entries,
            next,
            usage,
        })
    }

    /// The entry under `key`.
    pub async fn get(
        &self,
        user_id: &str,
        script_id: &str,
        key: &str,
    ) -> Result<StateEntry, StateError> {
        self.script(user_id, script_id).await?;
        self.store
            .state_entry(script_id, key)
            .await?
            .ok_or_else(|| StateError::NotFound(format!("state key `{key}`")))
    }

    /// Sets `key` to `value`, forgotten after `ttl_seconds` if given.
    pub async fn set(
        &self,
        user_id: &str,
        script_id: &str,
        key: &str,
        value: &Value,
        ttl_seconds: Option<i64>,
    ) -> Result<StateEntry, StateError> {
        self.script(user_id, script_id).await?;
        if let Some(problem) = state_key_problem(key) {
            return Err(StateError::InvalidKey(problem));
        }
        let expires_at =
            state_expiry(ttl_seconds, now_millis()).map_err(StateError::InvalidValue)?;
        let value = canonical_json(value);
        if value.len() > MAX_STATE_VALUE_BYTES {
            return Err(StateError::TooLarge(value.len()));
        }
        self.write(
            script_id,
            StateChange {
                key: key.to_string(),
                value: Some(value),
                expires_at,
            },
        )
        .await?;
        self.get(user_id, script_id, key).await
    }

    /// Removes `key`.
    pub async fn delete(
        &self,
        user_id: &str,
        script_id: &str,
        key: &str,
    ) -> Result<(), StateError> {
        self.get(user_id, script_id, key).await?;
        self.write(
            script_id,
            StateChange {
                key: key.to_string(),
                value: None,
                expires_at: None,
            },
        )
        .await
    }

    /// Replaces all of the script's state with `entries` (key, value, expiry
    /// in Unix ms), or nothing if one is refused.
    pub async fn replace(
        &self,
        user_id: &str,
        script_id: &str,
        entries: Vec<(String, Value, Option<i64>)>,
    ) -> Result<StateUsage, StateError> {
        self.script(user_id, script_id).await?;
        let now = now_millis();
        let mut keys = std::collections::BTreeSet::new();
        let mut changes = Vec::with_capacity(entries.len());
        for (key, value, expires_at) in entries {
            if let Some(problem) = state_key_problem(&key) {
                return Err(StateError::InvalidKey(format!("`{key}`: {problem}")));
            }
            if !keys.insert(key.clone()) {
                return Err(StateError::InvalidKey(format!("`{key}` is given twice")));
            }
            if let Some(at) = expires_at
                && !(now < at && at <= now + MAX_STATE_TTL_SECONDS * 1000)
            {
                return Err(StateError::InvalidValue(format!(
                    "the expiry of `{key}` is past or more than {MAX_STATE_TTL_SECONDS} seconds ahead"
                )));
            }
            let value = canonical_json(&value);
            if value.len() > MAX_STATE_VALUE_BYTES {
                return Err(StateError::TooLarge(value.len()));
            }
            changes.push(StateChange {
                key,
                value: Some(value),
                expires_at,
            });
        }
        let writes = StateWrites {
            changes,
            expected: Vec::new(),
            quota: self.quota,
        };
        match self.store.replace_state(script_id, &writes).await? {
            StateWritten::Written(usage) => {
                tracing::info!(
                    script_id,
                    keys = usage.keys,
                    bytes = usage.bytes,
                    "script state replaced through the API"
                );
                Ok(usage)
            }
            StateWritten::Refused(refused) => Err(StateError::Quota(refused)),
            StateWritten::NoScript => Err(StateError::NotFound("script".into())),
        }
    }

    /// Forgets all of the script's state; how many entries went.
    pub async fn clear(&self, user_id: &str, script_id: &str) -> Result<u64, StateError> {
        self.script(user_id, script_id).await?;
        Ok(self.store.clear_state(script_id).await?)
    }

    async fn write(&self, script_id: &str, change: StateChange) -> Result<(), StateError> {
        let key = change.key.clone();
        let writes = StateWrites {
            changes: vec![change],
            expected: Vec::new(),
            quota: self.quota,
        };
        match self.store.write_state(script_id, &writes).await? {
            StateWritten::Written(usage) => {
                tracing::info!(script_id, key = %key, keys = usage.keys, bytes = usage.bytes, "script state written through the API");
                Ok(())
            }
            StateWritten::Refused(refused) => Err(StateError::Quota(refused)),
            StateWritten::NoScript => Err(StateError::NotFound("script".into())),
        }
    }

    async fn script(&self, user_id: &str, script_id: &str) -> Result<(), StateError> {
        match self.store.get_script(user_id, script_id).await? {
            Some(_) => Ok(()),
            None => Err(StateError::NotFound("script".into())),
        }
    }
}
