//! Flow control declared per handler (`debounce`, `throttle`), checked
//! at deploy; the queue enforces it (`store/flow.rs`).

use roost_sandbox::Trigger;
use roost_sandbox::metadata::HandlerMeta;

/// The longest quiet period, in ms (a day).
const MAX_PERIOD_MS: u64 = 86_400_000;

/// Longest key path.
const MAX_KEY_BYTES: usize = 128;

/// Most runs a throttle lets start per period.
const MAX_LIMIT: u32 = 10_000;

/// Checks each handler's flow control: one kind, on an event handler,
/// with a period of 1 ms to a day, a key path of names and indices and (for
/// a throttle) a limit of 1 to 10,000.
pub fn check_flows(handlers: &[HandlerMeta]) -> Result<(), String> {
    for handler in handlers {
        let Some(flow) = &handler.flow else { continue };
        let name = &handler.name;
        if !matches!(handler.trigger, Trigger::Event { .. }) {
            return Err(format!(
                "handler `{name}`: flow control applies to `#[on_event]` handlers"
            ));
        }
        let (key, period_ms) = match (&flow.debounce, &flow.throttle) {
            (Some(debounce), None) => (&debounce.key, debounce.period_ms),
            (None, Some(throttle)) => {
                if throttle.limit == 0 || throttle.limit > MAX_LIMIT {
                    return Err(format!(
                        "handler `{name}`: a throttle lets 1 to {MAX_LIMIT} runs start per period"
                    ));
                }
                (&throttle.key, throttle.period_ms)
            }
            _ => {
                return Err(format!(
                    "handler `{name}`: declare one of `debounce` and `throttle`"
                ));
            }
        };
        if period_ms == 0 || period_ms > MAX_PERIOD_MS {
            return Err(format!(
                "handler `{name}`: the period is 1 to {MAX_PERIOD_MS} ms"
            ));
        }
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
    }
    Ok(())
}
