//! What scripts remember between runs (`roost_sdk::state`): JSON values by
//! key, per script. A run's writes travel with its finish
//! (`RunEffects::state`) and are checked and written in the transaction
//! that records its success; an operator's writes through the API are
//! checked and written the same way, alone.
//!
//! Every write takes the script's usage row first, so the writes of one
//! script take turns on any engine; it then reads what is stored under the
//! keys it touches, checks the writer's conditions (`compare_and_set`) and
//! the script's quota against it ([`check`]), and only then writes.

mod sql;

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Serialize;

use super::StoreResult;
pub(in crate::store) use sql::{
    STATE_DELETE_SQL, STATE_PRUNE_SQL, STATE_USAGE_LOCK_SQL, STATE_USAGE_SET_SQL,
};

/// Longest key, in bytes.
pub const MAX_STATE_KEY_BYTES: usize = 256;
/// Largest value (its JSON), in bytes.
pub const MAX_STATE_VALUE_BYTES: usize = 64 * 1024;
/// Longest an entry may be kept before it expires: ten years.
pub const MAX_STATE_TTL_SECONDS: i64 = 10 * 365 * 24 * 3600;

/// One remembered value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateEntry {
    /// Its key.
    pub key: String,
    /// Its value, as canonical JSON (object keys sorted).
    pub value: String,
    /// When it is forgotten (Unix ms), if ever.
    pub expires_at: Option<i64>,
    /// When it was written (Unix ms).
    pub updated_at: i64,
    /// The run whose success wrote it; `None` when written through the API.
    pub run_id: Option<String>,
}

/// What a script's state takes: entries, and bytes of keys and values.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct StateUsage {
    /// Entries.
    pub keys: i64,
    /// Bytes of their keys and values.
    pub bytes: i64,
}

/// The most state one script may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateQuota {
    /// Most entries.
    pub max_keys: i64,
    /// Most bytes of keys and values.
    pub max_bytes: i64,
}

impl Default for StateQuota {
    fn default() -> Self {
        Self {
            max_keys: 10_000,
            max_bytes: 10 * 1024 * 1024,
        }
    }
}

/// The last thing written under one key: a value, or its removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The key.
    pub key: String,
    /// Its new value (canonical JSON); `None` removes it.
    pub value: Option<String>,
    /// When the new value is forgotten (Unix ms).
    pub expires_at: Option<i64>,
}

/// A batch of state writes for one script, written all or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateWrites {
    /// One change per key, in the order they were made.
    pub changes: Vec<StateChange>,
    /// What must still be stored under a key for the writes to stand
    /// (`None`: nothing): what a `compare_and_set` saw.
    pub expected: Vec<(String, Option<String>)>,
    /// The quota the script's state must stay within.
    pub quota: StateQuota,
}

impl StateWrites {
    /// Whether there is nothing to check or write.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.expected.is_empty()
    }
}

/// Why state writes were not made. Nothing of the batch is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateRefused {
    /// A `compare_and_set` saw a value another writer has since changed.
    #[error(
        "state key `{key}` changed after this run's compare_and_set read it (another run or the API wrote it)"
    )]
    Conflict {
        /// The key.
        key: String,
    },
    /// The script would keep more entries than its quota.
    #[error("the script's state would hold {keys} keys; the most allowed is {limit}")]
    TooManyKeys {
        /// Entries it would hold.
        keys: i64,
        /// The quota.
        limit: i64,
    },
    /// The script would keep more bytes than its quota.
    #[error(
        "the script's state would take {bytes} bytes of keys and values; the most allowed is {limit}"
    )]
    TooManyBytes {
        /// Bytes it would take.
        bytes: i64,
        /// The quota.
        limit: i64,
    },
}

/// What a batch of state writes came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateWritten {
    /// Written; the script's state now takes this much.
    Written(StateUsage),
    /// Refused: nothing written.
    Refused(StateRefused),
    /// The script is gone (and its state with it): nothing written.
    NoScript,
}

/// Why `key` cannot be a key, if it cannot.
pub fn state_key_problem(key: &str) -> Option<String> {
    if key.is_empty() || key.len() > MAX_STATE_KEY_BYTES {
        return Some(format!("a key takes 1 to {MAX_STATE_KEY_BYTES} bytes"));
    }
    if key.chars().any(char::is_control) {
        return Some("a key has no control characters".into());
    }
    None
}

/// When an entry written at `now` (Unix ms) with `ttl_seconds` expires;
/// why it cannot, if the TTL is out of range.
pub fn state_expiry(ttl_seconds: Option<i64>, now: i64) -> Result<Option<i64>, String> {
    match ttl_seconds {
        None => Ok(None),
        Some(ttl) if (1..=MAX_STATE_TTL_SECONDS).contains(&ttl) => Ok(Some(now + ttl * 1000)),
        Some(_) => Err(format!("`ttlSeconds` is from 1 to {MAX_STATE_TTL_SECONDS}")),
    }
}

/// `value` as stored: canonical JSON (object keys sorted, no spaces), so
/// that equal values compare equal as text.
pub fn canonical_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// Bytes an entry counts against the quota.
pub fn state_entry_size(key: &str, value: &str) -> i64 {
    i64::try_from(key.len() + value.len()).unwrap_or(i64::MAX)
}

/// The script's state.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The live entry under `key`, if any.
    async fn state_entry(&self, script_id: &str, key: &str) -> StoreResult<Option<StateEntry>>;
    /// The live entries under `keys` (those that exist), in key order.
    async fn state_entries_by_keys(
        &self,
        script_id: &str,
        keys: &[&str],
    ) -> StoreResult<Vec<StateEntry>>;
    /// Live entries whose keys start with `prefix` and sort after `after`,
    /// in key order (bytewise), at most `limit`.
    async fn state_entries(
        &self,
        script_id: &str,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<StateEntry>>;
    /// What the script's live entries take.
    async fn state_usage(&self, script_id: &str) -> StoreResult<StateUsage>;
    /// Checks and writes `writes` in one transaction (an operator's, not a
    /// run's: `run_id` stays empty).
    async fn write_state(&self, script_id: &str, writes: &StateWrites)
    -> StoreResult<StateWritten>;
    /// Replaces all of the script's state with the changes of `writes`
    /// (an operator's restore), in one transaction, within the quota.
    async fn replace_state(
        &self,
        script_id: &str,
        writes: &StateWrites,
    ) -> StoreResult<StateWritten>;
    /// Forgets all of the script's state; how many entries went.
    async fn clear_state(&self, script_id: &str) -> StoreResult<u64>;
}

/// What is stored under a key a batch touches.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    /// Bytes it counts.
    pub(super) size: i64,
    /// Its value.
    pub(super) value: String,
}

/// Checks `writes` against what is stored: `usage`, the script's usage with
/// expired entries left out, and `stored`, the live entries under the keys
/// the batch touches. The usage after the writes, or why they are refused.
pub(super) fn check(
    writes: &StateWrites,
    usage: StateUsage,
    stored: &HashMap<String, Stored>,
) -> Result<StateUsage, StateRefused> {
    for (key, expected) in &writes.expected {
        if stored.get(key).map(|s| &s.value) != expected.as_ref() {
            return Err(StateRefused::Conflict { key: key.clone() });
        }
    }
    let mut after = usage;
    for change in &writes.changes {
        if let Some(old) = stored.get(&change.key) {
            after.keys -= 1;
            after.bytes -= old.size;
        }
        if let Some(value) = &change.value {
            after.keys += 1;
            after.bytes += state_entry_size(&change.key, value);
        }
    }
    // A quota lowered below what a script keeps still lets it shrink.
    let quota = writes.quota;
    if after.keys > quota.max_keys && after.keys > usage.keys {
        return Err(StateRefused::TooManyKeys {
            keys: after.keys,
            limit: quota.max_keys,
        });
    }
    if after.bytes > quota.max_bytes && after.bytes > usage.bytes {
        return Err(StateRefused::TooManyBytes {
            bytes: after.bytes,
            limit: quota.max_bytes,
        });
    }
    Ok(after)
}

/// The keys a batch touches, each once.
pub(super) fn touched_keys(writes: &StateWrites) -> Vec<&str> {
    let mut keys: Vec<&str> = writes
        .changes
        .iter()
        .map(|c| c.key.as_str())
        .chain(writes.expected.iter().map(|(k, _)| k.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// `keys` padded (with its first key again) to the next power of two, so
/// that statements listing keys come in few shapes and stay prepared.
pub(super) fn padded<'k>(keys: &[&'k str]) -> Vec<&'k str> {
    let mut padded = keys.to_vec();
    if let Some(first) = keys.first() {
        padded.resize(keys.len().next_power_of_two(), first);
    }
    padded
}

/// The first key after every key starting with `prefix`, in bytewise
/// order; `None` if there is none (an empty prefix).
pub(super) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value; surrogates are not chars.
        let next = (u32::from(last) + 1..=0x10FFFF).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The error a run's record gets when its state writes are refused at
/// its commit (the run itself succeeded).
pub(super) fn refused_run_error(refused: &StateRefused) -> String {
    format!(
        "the run's writes were refused when its success was recorded: {refused}. Nothing it \
         wrote was kept (state, outbox messages); a retry, if the script's policy allows one, \
         runs it again against the state as it is now"
    )
}

/// A batch checked against the store, within its transaction.
pub(super) enum Checked {
    /// It may be written; the usage it leaves.
    Passed(StateUsage),
    /// Refused.
    Refused(StateRefused),
    /// The script is gone.
    NoScript,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(changes: &[(&str, Option<&str>)], expected: &[(&str, Option<&str>)]) -> StateWrites {
        StateWrites {
            changes: changes
                .iter()
                .map(|(k, v)| StateChange {
                    key: k.to_string(),
                    value: v.map(str::to_string),
                    expires_at: None,
                })
                .collect(),
            expected: expected
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            quota: StateQuota {
                max_keys: 3,
                max_bytes: 100,
            },
        }
    }

    fn stored(entries: &[(&str, &str)]) -> HashMap<String, Stored> {
        entries
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Stored {
                        size: state_entry_size(k, v),
                        value: v.to_string(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn conditions_compare_what_is_stored() {
        let now = stored(&[("a", "1")]);
        let usage = StateUsage { keys: 1, bytes: 2 };
        let cas = writes(&[("a", Some("2"))], &[("a", Some("1"))]);
        assert_eq!(
            check(&cas, usage, &now),
            Ok(StateUsage { keys: 1, bytes: 2 })
        );
        let stale = writes(&[("a", Some("2"))], &[("a", Some("0"))]);
        assert_eq!(
            check(&stale, usage, &now),
            Err(StateRefused::Conflict { key: "a".into() })
        );
        let create = writes(&[("b", Some("1"))], &[("b", None)]);
        assert_eq!(
            check(&create, usage, &now),
            Ok(StateUsage { keys: 2, bytes: 4 })
        );
        let raced = writes(&[("a", Some("1"))], &[("a", None)]);
        assert!(matches!(
            check(&raced, usage, &now),
            Err(StateRefused::Conflict { .. })
        ));
    }

    #[test]
    fn the_quota_counts_keys_and_bytes_after_the_writes() {
        let now = stored(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let usage = StateUsage { keys: 3, bytes: 6 };
        let fourth = writes(&[("d", Some("1"))], &[]);
        assert_eq!(
            check(&fourth, usage, &now),
            Err(StateRefused::TooManyKeys { keys: 4, limit: 3 })
        );
        let swap = writes(&[("a", None), ("d", Some("1"))], &[]);
        assert_eq!(check(&swap, usage, &now), Ok(usage));
        let big = "x".repeat(99);
        let too_big = writes(&[("a", Some(&big))], &[]);
        assert_eq!(
            check(&too_big, usage, &now),
            Err(StateRefused::TooManyBytes {
                bytes: 104,
                limit: 100
            })
        );
        // Over a lowered quota, shrinking is still allowed.
        let over = StateUsage { keys: 5, bytes: 6 };
        assert!(check(&writes(&[("a", None)], &[]), over, &now).is_ok());
    }

    #[test]
    fn a_prefix_ends_at_the_next_string_of_its_length() {
        assert_eq!(prefix_end("seen/"), Some("seen0".into()));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("a\u{10FFFF}"), Some("b".into()));
        assert_eq!(prefix_end("\u{D7FF}"), Some("\u{E000}".into()));
    }
}
