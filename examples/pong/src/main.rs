//! The other half of the rally (see `ping`): each `ping` is answered with
//! the next `pong` until the count reaches `stop_at`, when `rally.over` is
//! emitted instead.

use roost_sdk::{Invocation, events, on_event};
use serde_json::json;

#[on_event("ping")]
fn volley(invocation: &Invocation) -> roost_sdk::Result {
    let ball = &invocation.payload;
    let n = ball["n"].as_u64().unwrap_or(0);
    let stop_at = ball["stop_at"].as_u64().unwrap_or(0);
    if n >= stop_at {
        events::emit("rally.over", &json!({ "hits": n }))?;
        println!("rally over at {n}");
        return Ok(());
    }
    let next = json!({ "n": n + 1, "stop_at": stop_at, "sleep_ms": ball["sleep_ms"] });
    let id = events::emit("pong", &next)?;
    println!("pong {} as {id}", n + 1);
    // Emitted, not yet committed: a crash now must not lose or double it.
    std::thread::sleep(std::time::Duration::from_millis(
        ball["sleep_ms"].as_u64().unwrap_or(0),
    ));
    if ball["fail_after_emit"] == true {
        // A failed run emits nothing: the event above is never committed.
        return Err(roost_sdk::Error::msg("asked to fail after emitting"));
    }
    Ok(())
}

roost_sdk::main!(volley);
