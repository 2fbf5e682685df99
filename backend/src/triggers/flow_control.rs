//! Flow control declared per handler (`debounce`, `throttle`,
//! `concurrency`), checked at deploy; the queue enforces it
//! (`store/flow.rs`).

use roost_sandbox::Trigger;
use roost_sandbox::metadata::HandlerMeta;

/// The longest quiet period, in ms (a day).
const MAX_PERIOD_MS: u64 = 86_400_000;

/// Longest key path.
const MAX_KEY_BYTES: usize = 128;

/// Most runs a throttle lets start per period, or a concurrency limit
/// lets run at once.
const MAX_LIMIT: u32 = 10_000;

/// Checks each handler's flow control: on an event handler, a debounce or
/// a throttle (not both) and a concurrency limit, each with a period of
/// 1 ms to a day, a key path of names and indices and a limit of 1 to
/// 10,000.
pub fn check_flows(handlers: &[HandlerMeta]) -> Result<(), String> {
    for handler in handlers {
        let Some(flow) = &handler.flow else { continue };
        let name = &handler.name;
        if !matches!(handler.trigger, Trigger::Event { .. }) {
            return Err(format!(
                "handler `{name}`: flow control applies to `#[on_event]` handlers"
            ));
        }
        let mut keys = Vec::new();
        match (&flow.debounce, &flow.throttle) {
            (Some(debounce), None) => {
                check_period(name, debounce.period_ms)?;
                keys.push(&debounce.key);
            }
            (None, Some(throttle)) => {
                check_limit(name, "a throttle lets", throttle.limit)?;
                check_period(name, throttle.period_ms)?;
                keys.push(&throttle.key);
            }
            (Some(_), Some(_)) => {
                return Err(format!(
                    "handler `{name}`: declare `debounce` or `throttle`, not both"
                ));
            }
            (None, None) if flow.concurrency.is_none() => {
                return Err(format!(
                    "handler `{name}`: declare `debounce`, `throttle` or `concurrency`"
                ));
            }
            (None, None) => {}
        }
        if let Some(concurrency) = &flow.concurrency {
            check_limit(name, "a concurrency limit lets", concurrency.limit)?;
            keys.push(&concurrency.key);
        }
        for key in keys {
            check_key(name, key)?;
        }
    }
    Ok(())
}

fn check_period(name: &str, period_ms: u64) -> Result<(), String> {
    if period_ms == 0 || period_ms > MAX_PERIOD_MS {
        return Err(format!(
            "handler `{name}`: the period is 1 to {MAX_PERIOD_MS} ms"
        ));
    }
    Ok(())
}

fn check_limit(name: &str, what: &str, limit: u32) -> Result<(), String> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(format!(
            "handler `{name}`: {what} 1 to {MAX_LIMIT} runs per key"
        ));
    }
    Ok(())
}

fn check_key(name: &str, key: &str) -> Result<(), String> {
    let valid = key.len() <= MAX_KEY_BYTES
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid {
        return Err(format!(
            "handler `{name}`: the key is a path of at most {MAX_KEY_BYTES} bytes \
             such as `customer.id` or `items.0.sku`"
        ));
    }
    Ok(())
}
