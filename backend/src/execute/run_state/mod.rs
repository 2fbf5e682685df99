//! The host side of `roost_sdk::state` for one run: `POST
//! http://roost.internal/v1/state/{get,write,list}`.
//!
//! The run sees the script's committed state with its own writes on top,
//! and writes nothing while it runs: its changes, and what each of its
//! `compare_and_set` calls saw, are handed over with its finish
//! (`RunEffects::state`) and written only if it succeeds, in the
//! transaction that records the success. There the store checks them again
//! (another run may have written meanwhile) and refuses them all, and the
//! success, if a `compare_and_set` was overtaken or the quota would be
//! passed. The SDK keeps the run's view on its side too and sends its
//! writes in batches, so a run makes few requests here.
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
    MAX_STATE_KEY_BYTES, MAX_STATE_VALUE_BYTES, StateChange, StateEntry, StateQuota, StateWrites,
    canonical_json as canonical, now_millis, state_entry_size, state_expiry, state_key_problem,
};

/// Most entries one `list` call answers with.
const MAX_LIST_PAGE: i64 = 500;
/// Most keys one `get` asks for.
const MAX_KEYS_PER_GET: usize = 100;

/// The state a run starts from: the store's on a server, a file's for
/// `roost run --state`.
#[async_trait]
pub(crate) trait CommittedState: Send + Sync {
    /// The live entries under `keys` (those that exist), in any order.
    async fn entries_by_keys(&self, keys: &[&str]) -> Result<Vec<StateEntry>, String>;
    /// Live entries with `prefix` after `after`, in key order, at most `limit`.
    async fn entries(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StateEntry>, String>;
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
}

/// Bytes a change would store (none for a removal).
fn stored_size(change: &StateChange) -> Option<i64> {
    change
        .value
        .as_ref()
        .map(|v| state_entry_size(&change.key, v))
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

    /// Keys and bytes the run's changes would store by themselves, with
    /// `batch` applied after them.
    fn footprint_with(&self, batch: &[(StateChange, Option<Option<String>>)]) -> (i64, i64) {
        let mut sizes: BTreeMap<&str, Option<i64>> = BTreeMap::new();
        for (change, _) in batch {
            sizes.insert(change.key.as_str(), stored_size(change));
        }
        let untouched: Vec<i64> = self
            .changes
            .values()
            .filter(|c| !sizes.contains_key(c.key.as_str()))
            .filter_map(stored_size)
            .collect();
        untouched
            .into_iter()
            .chain(sizes.into_values().flatten())
            .fold((0, 0), |(keys, bytes), size| (keys + 1, bytes + size))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetInput {
    keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteInput {
    writes: Vec<WriteOp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WriteOp {
    key: String,
    /// `null` removes the key.
    value: Value,
    #[serde(default)]
    ttl_seconds: Option<i64>,
    /// A `compare_and_set`: what the run saw committed under the key.
    #[serde(default)]
    expected: Option<Expected>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    /// `null`: the key was absent.
    value: Value,
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
            "write" => self.write(body),
            "list" => self.list(body).await,
            _ => Err(error(
                404,
                "not_found",
                format!("roost's state has no operation `{operation}`: get, write or list"),
            )),
        };
        answer.unwrap_or_else(|refusal| refusal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `{"keys": [...]}` → `{"values": {key: {"value", "expiresAt"} | null}}`.
    async fn get(&self, body: &[u8]) -> Result<HostResponse, Refusal> {
        let input: GetInput = parse(body)?;
        if input.keys.len() > MAX_KEYS_PER_GET {
            return Err(error(
                400,
                "invalid_input",
                format!("one read asks for at most {MAX_KEYS_PER_GET} keys"),
            ));
        }
        for key in &input.keys {
            check_key(key)?;
        }
        let now = now_millis();
        let mut values = serde_json::Map::new();
        let mut missing = Vec::new();
        {
            let pending = self.lock();
            for key in &input.keys {
                match pending.own(key, now) {
                    Some(own) => {
                        values.insert(key.clone(), found(own));
                    }
                    None => missing.push(key.as_str()),
                }
            }
        }
        if !missing.is_empty() {
            let entries = self
                .committed
                .entries_by_keys(&missing)
                .await
                .map_err(unavailable)?;
            for key in missing {
                values.insert(key.to_string(), Value::Null);
            }
            for entry in entries {
                values.insert(entry.key, found(Some((entry.value, entry.expires_at))));
            }
        }
        Ok(HostResponse::json(200, &json!({ "values": values })))
    }

    /// `{"writes": [...]}`: kept for the commit, all or none of them.
    fn write(&self, body: &[u8]) -> Result<HostResponse, Refusal> {
        let input: WriteInput = parse(body)?;
        let now = now_millis();
        let mut ops = Vec::with_capacity(input.writes.len());
        for mut op in input.writes {
            // A key is the script's to choose, so it could carry a
            // credential value as well as a value could.
            op.key = self.masker.mask_str(&op.key);
            check_key(&op.key)?;
            let expires_at = state_expiry(op.ttl_seconds, now)
                .map_err(|problem| error(400, "invalid_input", problem))?;
            let value = (!op.value.is_null()).then(|| self.masker.mask_str(&canonical(&op.value)));
            if let Some(value) = &value
                && value.len() > MAX_STATE_VALUE_BYTES
            {
                return Err(error(
                    413,
                    "value_too_large",
                    format!(
                        "the value of `{}` takes {} bytes as JSON; a value takes at most {MAX_STATE_VALUE_BYTES}",
                        op.key,
                        value.len()
                    ),
                ));
            }
            let seen = op
                .expected
                .map(|e| (!e.value.is_null()).then(|| self.masker.mask_str(&canonical(&e.value))));
            ops.push((
                StateChange {
                    key: op.key,
                    value,
                    expires_at,
                },
                seen,
            ));
        }
        let mut pending = self.lock();
        // The store checks the quota against what is stored when the run
        // commits; writes that pass it alone are refused here already.
        let (keys, bytes) = pending.footprint_with(&ops);
        if keys > self.quota.max_keys {
            return Err(error(
                507,
                "quota_exceeded",
                format!(
                    "this run's writes would hold {keys} keys; the most allowed is {}",
                    self.quota.max_keys
                ),
            ));
        }
        if bytes > self.quota.max_bytes {
            return Err(error(
                507,
                "quota_exceeded",
                format!(
                    "this run's writes would take {bytes} bytes of keys and values; the most allowed is {}",
                    self.quota.max_bytes
                ),
            ));
        }
        for (change, seen) in ops {
            // Only what a compare-and-set saw of the committed state needs
            // checking again; the run's own writes cannot change under it.
            if let Some(seen) = seen
                && !pending.changes.contains_key(&change.key)
            {
                pending.expected.entry(change.key.clone()).or_insert(seen);
            }
            pending.changes.insert(change.key.clone(), change);
        }
        Ok(HostResponse::json(200, &json!({})))
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
}

fn found(own: Option<(String, Option<i64>)>) -> Value {
    match own {
        Some((value, expires_at)) => json!({ "value": raw(&value), "expiresAt": expires_at }),
        None => Value::Null,
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
mod tests;
