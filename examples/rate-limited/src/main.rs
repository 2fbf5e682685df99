//! An API that allows two calls a second per tenant: `api.call` events are
//! throttled by `tenant`, and the rest wait their turn; `api.ping` ones past
//! the rate are dropped instead.

use roost_sdk::{Invocation, on_event};

#[on_event("api.call", throttle(key = "tenant", limit = 2, period_ms = 1000))]
fn call(invocation: &Invocation) {
    let call = &invocation.payload;
    println!("tenant {} call {}", call["tenant"], call["n"]);
}

#[on_event("api.ping", throttle(key = "tenant", limit = 2, period_ms = 1000, drop = true))]
fn ping(invocation: &Invocation) {
    println!("ping {}", invocation.payload["n"]);
}

roost_sdk::main!(call, ping);
