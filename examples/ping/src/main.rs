//! Half of a rally: `start` serves the first `ping`; each `pong` is
//! answered with the next `ping` until the count reaches `stop_at`.
//! Deployed beside `pong`, each hit is a run that an emitted event started;
//! the last hit emits `rally.over`, which `scorekeeper` takes.

use roost_sdk::runs::{self, When};
use roost_sdk::{Invocation, events, handler, on_event};
use serde_json::json;

/// Serves the first ball: `{"stop_at": N, "sleep_ms": M}` (both optional).
#[handler]
fn start(invocation: &Invocation) -> roost_sdk::Result {
    let stop_at = invocation.payload["stop_at"].as_u64().unwrap_or(3);
    let sleep_ms = invocation.payload["sleep_ms"].as_u64().unwrap_or(0);
    let id = events::emit("ping", &json!({ "n": 1, "stop_at": stop_at, "sleep_ms": sleep_ms }))?;
    println!("served ping 1 as {id}");
    Ok(())
}

/// Serves later: asks for a run of `start` in `in_ms` (default 1000) with
/// the same payload. With `"fail": true` it fails after asking, so nothing
/// is asked for.
#[handler]
fn serve_later(invocation: &Invocation) -> roost_sdk::Result {
    let in_ms = invocation.payload["in_ms"].as_u64().unwrap_or(1000);
    let when = When::In(std::time::Duration::from_millis(in_ms));
    let scheduled = runs::schedule("start", when, &invocation.payload)?;
    println!("start will run as {} at {}", scheduled.run_id, scheduled.not_before);
    if invocation.payload["fail"] == true {
        return Err(roost_sdk::Error::msg("asked to fail after scheduling"));
    }
    Ok(())
}

/// Emits `count` `flood` events of `size` bytes each: roost's per-run caps
/// stop it, and the run fails with roost's refusal.
#[handler]
fn flood(invocation: &Invocation) -> roost_sdk::Result {
    let count = invocation.payload["count"].as_u64().unwrap_or(1);
    let pad = "x".repeat(invocation.payload["size"].as_u64().unwrap_or(1) as usize);
    for n in 0..count {
        events::emit("flood", &json!({ "n": n, "pad": pad }))?;
    }
    Ok(())
}

#[on_event("pong")]
fn volley(invocation: &Invocation) -> roost_sdk::Result {
    hit(invocation, "ping")
}

/// Sends the ball back as `kind` unless the rally is over (then says so
/// with `rally.over`, which `scorekeeper` counts), then sleeps `sleep_ms`.
fn hit(invocation: &Invocation, kind: &str) -> roost_sdk::Result {
    let ball = &invocation.payload;
    let n = ball["n"].as_u64().unwrap_or(0);
    let stop_at = ball["stop_at"].as_u64().unwrap_or(0);
    if n >= stop_at {
        events::emit("rally.over", &json!({ "hits": n }))?;
        println!("rally over at {n}");
        return Ok(());
    }
    let next = json!({ "n": n + 1, "stop_at": stop_at, "sleep_ms": ball["sleep_ms"] });
    let id = events::emit(kind, &next)?;
    println!("{kind} {} as {id}", n + 1);
    // Emitted, not yet committed: a crash now must not lose or double it.
    std::thread::sleep(std::time::Duration::from_millis(
        ball["sleep_ms"].as_u64().unwrap_or(0),
    ));
    Ok(())
}

roost_sdk::main!(start, serve_later, flood, volley);
