//! The host side of `roost_sdk::state` for one run: `POST
//! http://roost.internal/v1/state/{get,set,delete,compare-and-set,list}`.
//!
//! The run sees the script's committed state with its own writes on top,
//! and writes nothing while it runs: its changes, and what each of its
//! `compare_and_set` calls saw, are handed over with its finish
//! (`RunEffects::state`) and written only if it succeeds, in the
//! transaction that records the success. There the store checks them again
//! (another run may have written meanwhile) and refuses them all, and the
//! success, if a `compare_and_set` was overtaken or the quota would be
//! passed.
//!
//! Values are JSON, kept in a canonical form (object keys sorted) so that
//! equal values compare equal as text.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use roost_sandbox::HostResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::host_services::error;
use super::masking::Masker;
use crate::store::{
    MAX_STATE_KEY_BYTES, MAX_STATE_VALUE_BYTES, StateChange, StateEntry, StateQuota, StateUsage,
    StateWrites, canonical_json as canonical, now_millis, state_entry_size, state_expiry,
    state_key_problem,
};

/// Most entries one `list` call answers with.
const MAX_LIST_PAGE: i64 = 500;

/// The state a run starts from: the store's on a server, a file's for
/// `roost run --state`.
#[async_trait]
pub(crate) trait CommittedState: Send + Sync {
    /// The live entry under `key`.
    async fn entry(&self, key: &str) -> Result<Option<StateEntry>, String>;
    /// Live entries with `prefix` after `after`, in key order, at most `limit`.
    async fn entries(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StateEntry>, String>;
    /// What the live entries take.
    async fn usage(&self) -> Result<StateUsage, String>;
}

/// One run's view of its script's state, and its writes.
pub(crate) struct RunState {
    committed: Box<dyn CommittedState>,
    quota: StateQuota,
    masker: Masker,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// The run's last change per key.
    changes: BTreeMap<String, StateChange>,
    /// What a `compare_and_set` saw committed under a key the run had not
    /// written yet: it must still be there when the run commits.
    expected: BTreeMap<String, Option<String>>,
    /// The committed size of each key read or written (`None`: absent),
    /// for the quota.
    committed_sizes: BTreeMap<String, Option<i64>>,
    /// The committed usage, read at the run's first write.
    committed_usage: Option<StateUsage>,
}

impl Pending {
    /// The run's view of `key`, if the run has written it.
    fn own(&self, key: &str, now: i64) -> Option<Option<(String, Option<i64>)>> {
        self.changes.get(key).map(|change| {
            change
                .value
                .clone()
                .filter(|_| change.expires_at.is_none_or(|at| at > now))
                .map(|v| (v, change.expires_at))
        })
    }

    /// The usage the run's changes would leave.
    fn usage_after(&self, committed: StateUsage) -> StateUsage {
        let mut usage = committed;
        for change in self.changes.values() {
            if let Some(Some(size)) = self.committed_sizes.get(&change.key) {
                usage.keys -= 1;
                usage.bytes -= size;
            }
            if let Some(value) = &change.value {
                usage.keys += 1;
                usage.bytes += state_entry_size(&change.key, value);
            }
        }
        usage
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyInput {
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SetInput {
    key: String,
    value: Value,
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CompareAndSetInput {
    key: String,
    /// `null`: the key must be absent.
    expected: Value,
    /// `null`: remove the key.
    value: Value,
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListInput {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// A refusal the guest gets as `{"error": …}`.
type Refusal = HostResponse;

impl RunState {
    /// A run's state over `committed`, within `quota`; values holding one of
    /// the run's credential values are stored masked.
    pub(crate) fn new(
        committed: Box<dyn CommittedState>,
        quota: StateQuota,
        masker: Masker,
    ) -> Self {
        Self {
            committed,
            quota,
            masker,
            pending: Mutex::default(),
        }
    }

    /// The run's writes, for its commit. Taken once.
    pub(crate) fn take_writes(&self) -> StateWrites {
        let mut pending = self.lock();
        let pending = std::mem::take(&mut *pending);
        StateWrites {
            changes: pending.changes.into_values().collect(),
            expected: pending.expected.into_iter().collect(),
            quota: self.quota,
        }
    }

    /// Answers `POST /v1/state/{operation}`.
    pub(crate) async fn handle(&self, operation: &str, body: &[u8]) -> HostResponse {
        let answer = match operation {
            "get" => self.get(body).await,
            "set" => self.set(body).await,
            "delete" => self.delete(body).await,
            "compare-and-set" => self.compare_and_set(body).await,
            "list" => self.list(body).await,
            _ => Err(error(
                404,
                "not_found",
                format!(
                    "roost's state has no operation `{operation}`: get, set, delete, compare-and-set or list"
                ),
            )),
        };
        answer.unwrap_or_else(|refusal| refusal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn get(&self, body: &[u8]) -> Result<HostResponse, Refusal> {
        let input: KeyInput = parse(body)?;
        check_key(&input.key)?;
        let found = self.view(&input.key).await?;
        Ok(HostResponse::json(
            200,
            &match found {
                Some((value, expires_at)) => {
                    json!({ "found": true, "value": raw(&value), "expiresAt": expires_at })
                }
                None => json!({ "found": false }),
            },
        ))
    }

    async fn set(&self, body: &[u8]) -> Result<HostResponse, Refusal> {
        let input: SetInput = parse(body)?;
        check_key(&input.key)?;
        let change = self.change(input.key, Some(&input.value), input.ttl_seconds)?;
        self.write(change, None).await?;
        Ok(HostResponse::json(200, &json!({})))
    }

    async fn delete(&self, body: &[u8]) -> Result<HostResponse, Refusal> {
        let input: KeyInput = parse(body)?;
        check_key(&input.key)?;
        let change = self.change(input.key, None, None)?;
        self.write(change, None).await?;
        Ok(HostResponse::json(200, &json!({})))
    }

    async fn compare_and_set(&self, body: &[u8]) -> Result<HostResponse, Refusal> {
        let input: CompareAndSetInput = parse(body)?;
        check_key(&input.key)?;
        let expected = (!input.expected.is_null()).then(|| canonical(&input.expected));
        let new = (!input.value.is_null()).then_some(&input.value);
        let change = self.change(input.key, new, input.ttl_seconds)?;
        let current = self.view(&change.key).await?.map(|(value, _)| value);
        if current != expected.map(|v| self.masker.mask_str(&v)) {
            return Ok(HostResponse::json(
                200,
                &json!({ "swapped": false, "current": current.as_deref().map(raw) }),
            ));
        }
        self.write(change, Some(current)).await?;
        Ok(HostResponse::json(200, &json!({ "swapped": true })))
    }

    async fn list(&self, body: &[u8]) -> Result<HostResponse, Refusal> {
        let input: ListInput = parse(body)?;
        if input.prefix.len() > MAX_STATE_KEY_BYTES {
            return Err(error(
                400,
                "invalid_key",
                format!("a prefix takes at most {MAX_STATE_KEY_BYTES} bytes"),
            ));
        }
        let limit = input.limit.unwrap_or(100).clamp(1, MAX_LIST_PAGE);
        let after = input.after.as_deref();
        let committed = self
            .committed
            .entries(&input.prefix, after, limit)
            .await
            .map_err(unavailable)?;
        // The page covers keys up to its last one, or all keys if it is the
        // last page; the run's own changes in that range go on top.
        let complete = (committed.len() as i64) < limit;
        let last = committed.last().map(|e| e.key.clone());
        let now = now_millis();
        let mut page: BTreeMap<String, (String, Option<i64>)> = committed
            .into_iter()
            .map(|e| (e.key, (e.value, e.expires_at)))
            .collect();
        {
            let pending = self.lock();
            for (key, _) in pending.changes.range::<str, _>((
                after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
                std::ops::Bound::Unbounded,
            )) {
                if !key.starts_with(&input.prefix)
                    || (!complete && last.as_deref().is_some_and(|last| key.as_str() > last))
                {
                    continue;
                }
                match pending.own(key, now).flatten() {
                    Some(entry) => page.insert(key.clone(), entry),
                    None => page.remove(key),
                };
            }
        }
        let entries: Vec<Value> = page
            .iter()
            .map(|(key, (value, expires_at))| {
                json!({ "key": key, "value": raw(value), "expiresAt": expires_at })
            })
            .collect();
        Ok(HostResponse::json(
            200,
            &json!({ "entries": entries, "next": if complete { None } else { last } }),
        ))
    }

    /// The run's view of `key`: its own write, else what is committed.
    async fn view(&self, key: &str) -> Result<Option<(String, Option<i64>)>, Refusal> {
        if let Some(own) = self.lock().own(key, now_millis()) {
            return Ok(own);
        }
        let entry = self.committed.entry(key).await.map_err(unavailable)?;
        let mut pending = self.lock();
        pending.committed_sizes.insert(
            key.to_string(),
            entry.as_ref().map(|e| state_entry_size(&e.key, &e.value)),
        );
        Ok(entry.map(|e| (e.value, e.expires_at)))
    }

    /// A change to `key`, its value checked and canonical.
    fn change(
        &self,
        key: String,
        value: Option<&Value>,
        ttl_seconds: Option<i64>,
    ) -> Result<StateChange, Refusal> {
        let expires_at = state_expiry(ttl_seconds, now_millis())
            .map_err(|problem| error(400, "invalid_input", problem))?;
        let value = value.map(|v| self.masker.mask_str(&canonical(v)));
        if let Some(value) = &value
            && value.len() > MAX_STATE_VALUE_BYTES
        {
            return Err(error(
                413,
                "value_too_large",
                format!(
                    "the value of `{key}` takes {} bytes as JSON; a value takes at most {MAX_STATE_VALUE_BYTES}",
                    value.len()
                ),
            ));
        }
        Ok(StateChange {
            key,
            value,
            expires_at,
        })
    }

    /// Keeps `change` for the commit if the quota allows it; `seen`, what a
    /// `compare_and_set` saw (to be checked again at the commit if that was
    /// the committed value).
    async fn write(
        &self,
        change: StateChange,
        seen: Option<Option<String>>,
    ) -> Result<(), Refusal> {
        let (know_size, know_usage) = {
            let pending = self.lock();
            (
                pending.changes.contains_key(&change.key)
                    || pending.committed_sizes.contains_key(&change.key),
                pending.committed_usage.is_some(),
            )
        };
        if !know_size {
            self.view(&change.key).await?;
        }
        if !know_usage {
            let usage = self.committed.usage().await.map_err(unavailable)?;
            self.lock().committed_usage.get_or_insert(usage);
        }
        let mut pending = self.lock();
        let committed = pending.committed_usage.unwrap_or_default();
        let before = pending.usage_after(committed);
        let key = change.key.clone();
        let previous = pending.changes.insert(key.clone(), change);
        let after = pending.usage_after(committed);
        let over = if after.keys > self.quota.max_keys && after.keys > before.keys {
            Some(format!(
                "the script's state would hold {} keys; the most allowed is {}",
                after.keys, self.quota.max_keys
            ))
        } else if after.bytes > self.quota.max_bytes && after.bytes > before.bytes {
            Some(format!(
                "the script's state would take {} bytes of keys and values; the most allowed is {}",
                after.bytes, self.quota.max_bytes
            ))
        } else {
            None
        };
        if let Some(message) = over {
            match previous {
                Some(previous) => pending.changes.insert(key, previous),
                None => pending.changes.remove(&key),
            };
            return Err(error(507, "quota_exceeded", message));
        }
        // Only what a compare-and-set saw of the committed state needs
        // checking again; its own earlier writes cannot change under it.
        if let Some(seen) = seen
            && previous.is_none()
            && !pending.expected.contains_key(&key)
        {
            pending.expected.insert(key, seen);
        }
        Ok(())
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body)
        .map_err(|e| error(400, "invalid_input", format!("the request: {e}")))
}

fn check_key(key: &str) -> Result<(), Refusal> {
    match state_key_problem(key) {
        Some(problem) => Err(error(400, "invalid_key", problem)),
        None => Ok(()),
    }
}

fn unavailable(message: String) -> Refusal {
    tracing::warn!(error = %message, "reading a script's state failed");
    error(
        503,
        "state_unavailable",
        "roost could not read the script's state; the run can fail and be retried".into(),
    )
}

/// Stored JSON text as a value to answer with.
fn raw(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Committed state in memory.
    #[derive(Default)]
    struct Memory(BTreeMap<String, String>);

    #[async_trait]
    impl CommittedState for Memory {
        async fn entry(&self, key: &str) -> Result<Option<StateEntry>, String> {
            Ok(self.0.get(key).map(|v| entry(key, v)))
        }
        async fn entries(
            &self,
            prefix: &str,
            after: Option<&str>,
            limit: i64,
        ) -> Result<Vec<StateEntry>, String> {
            Ok(self
                .0
                .iter()
                .filter(|(k, _)| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
                .take(limit as usize)
                .map(|(k, v)| entry(k, v))
                .collect())
        }
        async fn usage(&self) -> Result<StateUsage, String> {
            Ok(StateUsage {
                keys: self.0.len() as i64,
                bytes: self.0.iter().map(|(k, v)| state_entry_size(k, v)).sum(),
            })
        }
    }

    fn entry(key: &str, value: &str) -> StateEntry {
        StateEntry {
            key: key.into(),
            value: value.into(),
            expires_at: None,
            updated_at: 0,
            run_id: None,
        }
    }

    fn state(committed: &[(&str, &str)], quota: StateQuota) -> RunState {
        let memory = Memory(
            committed
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        RunState::new(Box::new(memory), quota, Masker::default())
    }

    async fn call(state: &RunState, op: &str, body: Value) -> (u16, Value) {
        let answer = state.handle(op, body.to_string().as_bytes()).await;
        (answer.status, serde_json::from_slice(&answer.body).unwrap())
    }

    #[tokio::test]
    async fn a_run_reads_its_own_writes_and_hands_them_over_once() {
        let state = state(
            &[("cursor", "1"), ("seen/a", "true")],
            StateQuota::default(),
        );
        let (_, got) = call(&state, "get", json!({"key": "cursor"})).await;
        assert_eq!(got, json!({"found": true, "value": 1, "expiresAt": null}));
        call(
            &state,
            "set",
            json!({"key": "cursor", "value": {"b": 2, "a": 1}}),
        )
        .await;
        call(&state, "delete", json!({"key": "seen/a"})).await;
        call(&state, "set", json!({"key": "seen/b", "value": true})).await;
        let (_, got) = call(&state, "get", json!({"key": "cursor"})).await;
        assert_eq!(got["value"], json!({"a": 1, "b": 2}));
        let (_, got) = call(&state, "get", json!({"key": "seen/a"})).await;
        assert_eq!(got, json!({"found": false}));
        let (_, listed) = call(&state, "list", json!({"prefix": "seen/"})).await;
        assert_eq!(listed["entries"].as_array().unwrap().len(), 1);
        assert_eq!(listed["entries"][0]["key"], "seen/b");
        assert_eq!(listed["next"], Value::Null);

        let writes = state.take_writes();
        let changes: Vec<(&str, Option<&str>)> = writes
            .changes
            .iter()
            .map(|c| (c.key.as_str(), c.value.as_deref()))
            .collect();
        assert_eq!(
            changes,
            [
                ("cursor", Some(r#"{"a":1,"b":2}"#)),
                ("seen/a", None),
                ("seen/b", Some("true"))
            ]
        );
        assert!(
            writes.expected.is_empty(),
            "plain writes carry no condition"
        );
        assert!(state.take_writes().is_empty(), "taken once");
    }

    #[tokio::test]
    async fn compare_and_set_checks_the_view_now_and_the_store_at_commit() {
        let state = state(&[("lock", r#""free""#)], StateQuota::default());
        let (_, answer) = call(
            &state,
            "compare-and-set",
            json!({"key": "lock", "expected": "taken", "value": "mine"}),
        )
        .await;
        assert_eq!(answer, json!({"swapped": false, "current": "free"}));
        let (_, answer) = call(
            &state,
            "compare-and-set",
            json!({"key": "lock", "expected": "free", "value": "mine"}),
        )
        .await;
        assert_eq!(answer, json!({"swapped": true}));
        // Against its own write now; the commit still checks what it saw first.
        let (_, answer) = call(
            &state,
            "compare-and-set",
            json!({"key": "lock", "expected": "mine", "value": null}),
        )
        .await;
        assert_eq!(answer, json!({"swapped": true}));
        let (_, answer) = call(
            &state,
            "compare-and-set",
            json!({"key": "new", "expected": null, "value": 1}),
        )
        .await;
        assert_eq!(answer, json!({"swapped": true}));
        let writes = state.take_writes();
        assert_eq!(
            writes.expected,
            [
                ("lock".to_string(), Some(r#""free""#.to_string())),
                ("new".to_string(), None)
            ]
        );
        assert_eq!(writes.changes[0].value, None, "the lock was released");
    }

    #[tokio::test]
    async fn limits_are_refused_with_nothing_kept() {
        let quota = StateQuota {
            max_keys: 2,
            max_bytes: 1_000,
        };
        let state = state(&[("a", "1")], quota);
        let long_key = "k".repeat(MAX_STATE_KEY_BYTES + 1);
        let huge = "x".repeat(MAX_STATE_VALUE_BYTES);
        for (op, body, status, code) in [
            (
                "set",
                json!({"key": long_key, "value": 1}),
                400,
                "invalid_key",
            ),
            ("set", json!({"key": "", "value": 1}), 400, "invalid_key"),
            (
                "set",
                json!({"key": "a\nb", "value": 1}),
                400,
                "invalid_key",
            ),
            (
                "set",
                json!({"key": "big", "value": huge}),
                413,
                "value_too_large",
            ),
            (
                "set",
                json!({"key": "b", "value": 1, "ttlSeconds": 0}),
                400,
                "invalid_input",
            ),
            ("set", json!({"key": "b", "valu": 1}), 400, "invalid_input"),
            ("rename", json!({}), 404, "not_found"),
        ] {
            let (got, answer) = call(&state, op, body.clone()).await;
            assert_eq!(
                (got, answer["error"]["code"].as_str()),
                (status, Some(code)),
                "{body}"
            );
        }
        assert_eq!(
            call(&state, "set", json!({"key": "b", "value": 1})).await.0,
            200
        );
        let (status, answer) = call(&state, "set", json!({"key": "c", "value": 1})).await;
        assert_eq!(status, 507);
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("most allowed is 2"),
            "{answer}"
        );
        // Replacing a key the run holds adds none.
        assert_eq!(
            call(&state, "set", json!({"key": "a", "value": 2})).await.0,
            200
        );
        let (status, _) = call(
            &state,
            "set",
            json!({"key": "a", "value": "y".repeat(1_000)}),
        )
        .await;
        assert_eq!(status, 507, "bytes");
        let writes = state.take_writes();
        let kept: Vec<_> = writes.changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(kept, ["a", "b"]);
        assert_eq!(writes.changes[0].value.as_deref(), Some("2"));
    }

    #[tokio::test]
    async fn a_credential_value_is_stored_masked() {
        let state = RunState::new(
            Box::new(Memory::default()),
            StateQuota::default(),
            Masker::new(["sk_live_0123456789"]),
        );
        let (status, _) = call(
            &state,
            "set",
            json!({"key": "note", "value": {"token": "sk_live_0123456789"}}),
        )
        .await;
        assert_eq!(status, 200);
        let (_, got) = call(&state, "get", json!({"key": "note"})).await;
        assert_eq!(got["value"]["token"], super::super::masking::MARKER);
        let writes = state.take_writes();
        assert!(
            !writes.changes[0]
                .value
                .as_ref()
                .unwrap()
                .contains("sk_live")
        );
    }
}
