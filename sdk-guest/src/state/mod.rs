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
//! writes, and reads each key from roost once: [`get_many`] reads several
//! in one request, and writes are sent in one batch when the handler
//! returns (or at [`flush`]). Two runs writing the same key: the later
//! success wins, unless a run wrote it with [`compare_and_set`]; if
//! another writer changed the key
//! after that run read it, the run's success is refused at its commit,
//! nothing it wrote is kept (state or outbox), and it is retried as a
//! failed run would be.
//!
//! Keys are 1 to 256 bytes without control characters; values take at most
//! 64 KiB as JSON. A script's state is held to a quota (10,000 keys and
//! 10 MiB by default; the server's operator may set others). A key or value
//! past its limit fails at once; a run whose writes would pass the quota
//! fails when they are recorded, with an error naming the limit, and keeps
//! none of them.
//! [`HighWater`] and [`SeenSet`] are the usual "since the last run" shapes.
//!
//! Reads and sends go to roost itself (`http://roost.internal`), never to
//! a network. Outside `wasm32` they fail with [`StateError::Unavailable`].

mod cursors;

use std::cell::RefCell;
use std::collections::BTreeMap;
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
    /// The run's writes alone would pass the script's quota (the message
    /// names it). Writes that pass it together with what is stored are
    /// refused when the run's success is recorded: the run fails.
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

/// The run's view of its state: what it wrote, what it read, and the
/// writes not yet sent to roost. Scripts run on one thread, and one run is
/// one instance.
#[derive(Default)]
struct Local {
    /// The run's own writes (`None`: removed), latest per key.
    own: BTreeMap<String, Option<Value>>,
    /// Committed values the run read, for keys it has not written.
    read: BTreeMap<String, Option<Value>>,
    /// Writes not yet sent, in order.
    unsent: Vec<Value>,
    /// Their size, roughly: sent before they would make a request too large.
    unsent_bytes: usize,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

/// Writes are sent in batches of about this many bytes.
const SEND_AT_BYTES: usize = 256 * 1024;
/// Most keys one read asks roost for.
const KEYS_PER_READ: usize = 100;

/// The value under `key`, if there is one (and it has not expired).
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, StateError> {
    let mut values = get_many::<T>(&[key])?;
    Ok(values.pop().flatten())
}

/// The values under `keys`, in their order: one request to roost for all
/// the keys this run has neither read nor written yet.
pub fn get_many<T: DeserializeOwned>(keys: &[&str]) -> Result<Vec<Option<T>>, StateError> {
    for key in keys {
        check_key(key)?;
    }
    let missing: Vec<&str> = LOCAL.with_borrow(|local| {
        let mut missing: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !local.own.contains_key(*k) && !local.read.contains_key(*k))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    });
    for chunk in missing.chunks(KEYS_PER_READ) {
        let answer = call("get", &json!({ "keys": chunk }))?;
        LOCAL.with_borrow_mut(|local| {
            for key in chunk {
                let found = answer["values"][*key].get("value").cloned();
                local.read.insert(key.to_string(), found);
            }
        });
    }
    keys.iter()
        .map(|key| match view(key) {
            Some(value) => decode(key, value).map(Some),
            None => Ok(None),
        })
        .collect()
}

/// Sets `key` to `value`.
pub fn set<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), StateError> {
    write(key, Some(encode(value)?), None, None)
}

/// Sets `key` to `value`, forgotten after `ttl` (whole seconds, at least
/// one).
pub fn set_with_ttl<T: Serialize + ?Sized>(
    key: &str,
    value: &T,
    ttl: Duration,
) -> Result<(), StateError> {
    write(key, Some(encode(value)?), Some(ttl), None)
}

/// Removes `key` (nothing happens if it is absent).
pub fn delete(key: &str) -> Result<(), StateError> {
    write(key, None, None, None)
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
    let expected = expected.map(encode).transpose()?;
    let new = new.map(encode).transpose()?;
    get_many::<Value>(&[key])?;
    if view(key) != expected {
        return Ok(false);
    }
    // What the run saw of the committed state must still be there when it
    // ends; after its own write to the key, nothing else can change it.
    let seen = LOCAL.with_borrow(|local| (!local.own.contains_key(key)).then(|| expected.clone()));
    write(key, new, ttl, seen)?;
    Ok(true)
}

/// Every entry whose key starts with `prefix`, in key order (bytewise).
pub fn list<T: DeserializeOwned>(prefix: &str) -> Result<Vec<(String, T)>, StateError> {
    // roost lists the committed state with the run's writes on top: it
    // needs them all first.
    flush()?;
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

/// Sends the run's writes to roost now. They are sent by themselves when
/// the handler returns (and before a [`list`]); call this to learn of a
/// refusal (the quota) inside the handler. Sent or not, writes are kept
/// only if the run succeeds.
pub fn flush() -> Result<(), StateError> {
    let unsent = LOCAL.with_borrow_mut(|local| {
        local.unsent_bytes = 0;
        std::mem::take(&mut local.unsent)
    });
    if unsent.is_empty() {
        return Ok(());
    }
    call("write", &json!({ "writes": unsent })).map(drop)
}

/// The run's view of `key`, once read or written.
fn view(key: &str) -> Option<Value> {
    LOCAL.with_borrow(|local| {
        local
            .own
            .get(key)
            .or_else(|| local.read.get(key))
            .cloned()
            .flatten()
    })
}

/// Keeps a write for the run's commit, checked here against the limits
/// roost would refuse it for.
fn write(
    key: &str,
    value: Option<Value>,
    ttl: Option<Duration>,
    seen: Option<Option<Value>>,
) -> Result<(), StateError> {
    check_key(key)?;
    if let Some(value) = &value {
        let bytes = value.to_string().len();
        if bytes > MAX_VALUE_BYTES {
            return Err(StateError::ValueTooLarge(format!(
                "the value of `{key}` takes {bytes} bytes as JSON; a value takes at most {MAX_VALUE_BYTES}"
            )));
        }
    }
    let mut op = json!({ "key": key, "value": value });
    if let Some(ttl) = ttl {
        op["ttlSeconds"] = json!(ttl_seconds(ttl));
    }
    if let Some(seen) = seen {
        op["expected"] = json!({ "value": seen });
    }
    crate::__private::STATE_FLUSH.get_or_init(|| || flush().map_err(|e| e.to_string()));
    let size = key.len() + value.as_ref().map_or(0, |v| v.to_string().len());
    let full = LOCAL.with_borrow_mut(|local| {
        local.own.insert(key.to_string(), value);
        local.unsent.push(op);
        local.unsent_bytes += size + 64;
        local.unsent_bytes >= SEND_AT_BYTES
    });
    if full { flush() } else { Ok(()) }
}

fn check_key(key: &str) -> Result<(), StateError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(StateError::InvalidKey(format!(
            "a key takes 1 to {MAX_KEY_BYTES} bytes"
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(StateError::InvalidKey(
            "a key has no control characters".into(),
        ));
    }
    Ok(())
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
        set("k", &1).unwrap();
        assert_eq!(get::<u64>("k").unwrap(), Some(1), "the run's own write");
        assert!(matches!(flush(), Err(StateError::Unavailable(_))));
    }

    #[test]
    fn limits_are_checked_before_anything_is_sent() {
        assert!(matches!(set("", &1), Err(StateError::InvalidKey(_))));
        assert!(matches!(
            get::<u64>(&"k".repeat(257)),
            Err(StateError::InvalidKey(_))
        ));
        let big = "x".repeat(MAX_VALUE_BYTES);
        assert!(matches!(
            set("big", &big),
            Err(StateError::ValueTooLarge(_))
        ));
    }
}
