//! Values a script remembers between runs: JSON values by key, per script.
//!
//! ```ignore
//! use roost_sdk::state;
//!
//! let seen: u64 = state::get("count")?.unwrap_or(0);
//! state::set("count", &(seen + 1))?;
//! ```
//!
//! What a run writes is kept only if the run succeeds, in the same
//! transaction that records its success (with its outbox messages). A run
//! that fails, times out, hits a limit or dies leaves the state as it found
//! it, so its retry starts from the same values. A run reads its own
//! writes. Two runs writing the same key: the later success wins, unless a
//! run wrote it with [`compare_and_set`]; if another writer changed the key
//! after that run read it, the run's success is refused at its commit,
//! nothing it wrote is kept (state or outbox), and it is retried as a
//! failed run would be.
//!
//! Keys are 1 to 256 bytes without control characters; values take at most
//! 64 KiB as JSON. A script's state is held to a quota (10,000 keys and
//! 10 MiB by default; the server's operator may set others): a write that
//! would pass it fails at once with [`StateError::QuotaExceeded`].
//! [`HighWater`] and [`SeenSet`] are the usual "since the last run" shapes.
//!
//! Each call goes to roost itself (`http://roost.internal`), never to a
//! network. Outside `wasm32` every call fails with
//! [`StateError::Unavailable`].

mod cursors;

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use cursors::{HighWater, SeenSet};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value, in bytes of JSON.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Why a state call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The key is empty, longer than [`MAX_KEY_BYTES`] or has a control
    /// character.
    InvalidKey(String),
    /// The value takes more than [`MAX_VALUE_BYTES`] as JSON.
    ValueTooLarge(String),
    /// The write would pass the script's quota (the message names it).
    QuotaExceeded(String),
    /// roost refused the call's input (a TTL out of range).
    InvalidInput(String),
    /// A stored value is not the type asked for, or a value does not
    /// serialise.
    Decode(String),
    /// roost could not answer (outside roost, or its store is down).
    Unavailable(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidKey(m) => write!(f, "state: invalid key: {m}"),
            Self::ValueTooLarge(m) => write!(f, "state: value too large: {m}"),
            Self::QuotaExceeded(m) => write!(f, "state: quota exceeded: {m}"),
            Self::InvalidInput(m) => write!(f, "state: invalid input: {m}"),
            Self::Decode(m) => write!(f, "state: {m}"),
            Self::Unavailable(m) => write!(f, "state: unavailable: {m}"),
        }
    }
}

impl std::error::Error for StateError {}

/// The value under `key`, if there is one (and it has not expired).
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, StateError> {
    let answer = call("get", &json!({ "key": key }))?;
    if answer["found"] != Value::Bool(true) {
        return Ok(None);
    }
    decode(key, answer["value"].clone()).map(Some)
}

/// Sets `key` to `value`.
pub fn set<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), StateError> {
    call("set", &json!({ "key": key, "value": encode(value)? })).map(drop)
}

/// Sets `key` to `value`, forgotten after `ttl` (whole seconds, at least
/// one).
pub fn set_with_ttl<T: Serialize + ?Sized>(
    key: &str,
    value: &T,
    ttl: Duration,
) -> Result<(), StateError> {
    let body = json!({ "key": key, "value": encode(value)?, "ttlSeconds": ttl_seconds(ttl) });
    call("set", &body).map(drop)
}

/// Removes `key` (nothing happens if it is absent).
pub fn delete(key: &str) -> Result<(), StateError> {
    call("delete", &json!({ "key": key })).map(drop)
}

/// Sets `key` to `new` (`None` removes it) only if it holds `expected`
/// now (`None`: it is absent); whether it did. The run's success is then
/// recorded only if the key still held `expected` when the run ends:
/// otherwise the run fails with a conflict and is retried.
pub fn compare_and_set<T: Serialize + ?Sized>(
    key: &str,
    expected: Option<&T>,
    new: Option<&T>,
) -> Result<bool, StateError> {
    compare_and_set_with(key, expected, new, None)
}

pub(crate) fn compare_and_set_with<T: Serialize + ?Sized>(
    key: &str,
    expected: Option<&T>,
    new: Option<&T>,
    ttl: Option<Duration>,
) -> Result<bool, StateError> {
    let mut body = json!({
        "key": key,
        "expected": expected.map(encode).transpose()?.unwrap_or(Value::Null),
        "value": new.map(encode).transpose()?.unwrap_or(Value::Null),
    });
    if let Some(ttl) = ttl {
        body["ttlSeconds"] = json!(ttl_seconds(ttl));
    }
    let answer = call("compare-and-set", &body)?;
    Ok(answer["swapped"] == Value::Bool(true))
}

/// Every entry whose key starts with `prefix`, in key order (bytewise).
pub fn list<T: DeserializeOwned>(prefix: &str) -> Result<Vec<(String, T)>, StateError> {
    let mut entries = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let answer = call(
            "list",
            &json!({ "prefix": prefix, "after": after, "limit": 100 }),
        )?;
        for entry in answer["entries"].as_array().into_iter().flatten() {
            let key = entry["key"].as_str().unwrap_or_default().to_string();
            let value = decode(&key, entry["value"].clone())?;
            entries.push((key, value));
        }
        match answer["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return Ok(entries),
        }
    }
}

fn ttl_seconds(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Value, StateError> {
    serde_json::to_value(value).map_err(|e| StateError::Decode(format!("the value: {e}")))
}

fn decode<T: DeserializeOwned>(key: &str, value: Value) -> Result<T, StateError> {
    serde_json::from_value(value)
        .map_err(|e| StateError::Decode(format!("the value of `{key}`: {e}")))
}

/// One operation on roost's side; its JSON answer, or its error as a
/// [`StateError`].
fn call(operation: &str, body: &Value) -> Result<Value, StateError> {
    let url = format!("http://roost.internal/v1/state/{operation}");
    let bytes = serde_json::to_vec(body).expect("JSON values serialise");
    let response = crate::http::send(
        "POST",
        &url,
        &[("content-type", "application/json")],
        &bytes,
    )
    .map_err(|e| StateError::Unavailable(e.to_string()))?;
    let answer: Value = response
        .json()
        .map_err(|_| StateError::Unavailable(format!("roost answered {}", response.status)))?;
    if (200..300).contains(&response.status) {
        return Ok(answer);
    }
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or("no message")
        .to_string();
    Err(match answer["error"]["code"].as_str().unwrap_or("") {
        "invalid_key" => StateError::InvalidKey(message),
        "value_too_large" => StateError::ValueTooLarge(message),
        "quota_exceeded" => StateError::QuotaExceeded(message),
        "invalid_input" => StateError::InvalidInput(message),
        _ => StateError::Unavailable(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_roost_every_call_is_unavailable() {
        assert!(matches!(get::<u64>("k"), Err(StateError::Unavailable(_))));
        assert!(matches!(set("k", &1), Err(StateError::Unavailable(_))));
    }
}
