//! Flow control the queue enforces when it queues a handler's runs
//! (`debounce`, `throttle`) and when it claims them (`concurrency`): the
//! keys a run carries, read from its payload.

use roost_sandbox::metadata::FlowControl;

use super::{StoreError, StoreResult};

/// A debounced run: at most one per key waits in the queue; a later one
/// for the same key replaces its payload and pushes back its time.
pub(super) struct Debounced {
    /// `<script>/<handler>/<key value>`.
    pub(super) flow_key: String,
    /// The end of the quiet period that starts now.
    pub(super) not_before: i64,
}

/// A throttled run: it starts no sooner than `period_ms` after the
/// `limit`-th latest run of its key.
pub(super) struct Throttled {
    /// `<script>/<handler>/<key value>`.
    pub(super) throttle_key: String,
    pub(super) limit: u32,
    pub(super) period_ms: i64,
    /// Not queued at all when it would have to wait.
    pub(super) drop: bool,
}

impl Throttled {
    /// The run's time, given the time of the `limit`-th latest run of its
    /// key (`None`: fewer runs than that); `None` for a run dropped.
    pub(super) fn slot(&self, earlier: Option<i64>, now: i64) -> Option<i64> {
        let slot = earlier.map_or(now, |at| at.saturating_add(self.period_ms).max(now));
        (slot == now || !self.drop).then_some(slot)
    }
}

/// A run of a handler with a concurrency limit: at most `limit` runs of
/// its key run at once.
pub(super) struct Limited {
    /// `<script>/<handler>/<key value>`.
    pub(super) concurrency_key: String,
    pub(super) limit: i64,
}

/// The flow control of one run: each part `None` when not declared.
#[derive(Default)]
pub(super) struct RunFlow {
    pub(super) debounced: Option<Debounced>,
    pub(super) throttled: Option<Throttled>,
    pub(super) limited: Option<Limited>,
}

/// The flow control of a trigger whose `flow` is `flow`, for a run of
/// `handler` of `script_id` with `payload`.
pub(super) fn flow_of(
    flow: Option<&str>,
    script_id: &str,
    handler: &str,
    payload: &serde_json::Value,
    now: i64,
) -> StoreResult<RunFlow> {
    let Some(flow) = flow else {
        return Ok(RunFlow::default());
    };
    let flow: FlowControl = serde_json::from_str(flow)
        .map_err(|e| StoreError::Corrupt(format!("a trigger's flow: {e}")))?;
    let key = |path: &str| {
        // Hashed: a key value is as long as the payload allows, an index
        // entry is not.
        let value = key_value(payload, path);
        let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(value.as_bytes()));
        format!("{script_id}/{handler}/{hash}")
    };
    Ok(RunFlow {
        debounced: flow.debounce.map(|debounce| Debounced {
            flow_key: key(&debounce.key),
            not_before: now.saturating_add(i64::try_from(debounce.period_ms).unwrap_or(i64::MAX)),
        }),
        throttled: flow.throttle.map(|throttle| Throttled {
            throttle_key: key(&throttle.key),
            limit: throttle.limit,
            period_ms: i64::try_from(throttle.period_ms).unwrap_or(i64::MAX),
            drop: throttle.drop,
        }),
        limited: flow.concurrency.map(|concurrency| Limited {
            concurrency_key: key(&concurrency.key),
            limit: i64::from(concurrency.limit),
        }),
    })
}

/// The value at `path` (`customer.id`, `items.0.sku`) in `payload`, as
/// JSON text (so `7` and `"7"` differ), or empty when the payload has
/// nothing there; an empty path is one key for every payload.
pub(crate) fn key_value(payload: &serde_json::Value, path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let mut at = payload;
    for step in path.split('.').filter(|s| !s.is_empty()) {
        let next = match at {
            serde_json::Value::Object(fields) => fields.get(step),
            serde_json::Value::Array(items) => {
                step.parse::<usize>().ok().and_then(|i| items.get(i))
            }
            _ => None,
        };
        match next {
            Some(next) => at = next,
            None => return String::new(),
        }
    }
    at.to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::key_value;

    #[test]
    fn throttled_runs_take_the_next_slot_or_are_dropped() {
        let throttled = |drop| super::Throttled {
            throttle_key: "k".into(),
            limit: 2,
            period_ms: 1000,
            drop,
        };
        assert_eq!(throttled(false).slot(None, 50), Some(50));
        assert_eq!(throttled(false).slot(Some(10), 50), Some(1010));
        assert_eq!(throttled(false).slot(Some(-2000), 50), Some(50));
        assert_eq!(throttled(true).slot(Some(10), 50), None);
        assert_eq!(throttled(true).slot(None, 50), Some(50));
    }

    #[test]
    fn keys_from_payloads() {
        let payload = json!({ "customer": { "id": "c1", "n": 7 }, "items": [{ "sku": "A" }] });
        assert_eq!(key_value(&payload, "customer.id"), r#""c1""#);
        assert_eq!(key_value(&payload, "customer.n"), "7");
        assert_eq!(
            key_value(&json!({ "customer": { "n": "7" } }), "customer.n"),
            r#""7""#
        );
        assert_eq!(key_value(&payload, "items.0.sku"), r#""A""#);
        assert_eq!(key_value(&payload, "missing.path"), "");
        assert_eq!(key_value(&json!({ "missing": null }), "missing"), "null");
        assert_eq!(key_value(&payload, ""), "", "one key for all");
    }
}
