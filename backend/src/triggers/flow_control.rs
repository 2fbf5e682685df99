//! Flow control declared per handler (today `debounce`), checked at
//! deploy; the queue enforces it (`store/flow.rs`).

use roost_sandbox::Trigger;
use roost_sandbox::metadata::HandlerMeta;

/// The longest quiet period, in ms (a day).
const MAX_PERIOD_MS: u64 = 86_400_000;

/// Longest key path.
const MAX_KEY_BYTES: usize = 128;

/// Checks each handler's flow control: debounce on event handlers, a
/// period of 1 ms to a day, a key path of names and indices.
pub fn check_flows(handlers: &[HandlerMeta]) -> Result<(), String> {
    for handler in handlers {
        let Some(flow) = &handler.flow else { continue };
        let name = &handler.name;
        if !matches!(handler.trigger, Trigger::Event { .. }) {
            return Err(format!(
                "handler `{name}`: debounce applies to `#[on_event]` handlers"
            ));
        }
        let debounce = &flow.debounce;
        if debounce.period_ms == 0 || debounce.period_ms > MAX_PERIOD_MS {
            return Err(format!(
                "handler `{name}`: the debounce period is 1 to {MAX_PERIOD_MS} ms"
            ));
        }
        let key = &debounce.key;
        let valid = key.len() <= MAX_KEY_BYTES
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            return Err(format!(
                "handler `{name}`: the debounce key is a path of at most {MAX_KEY_BYTES} bytes \
                 such as `customer.id` or `items.0.sku`"
            ));
        }
    }
    Ok(())
}
