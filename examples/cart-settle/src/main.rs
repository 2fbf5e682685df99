//! A customer who edits their cart ten times in a few seconds gets one
//! recomputation, of the last cart: `cart.updated` is debounced by
//! `customer`, with a quiet period of a second.

use roost_sdk::{Invocation, on_event};

#[on_event("cart.updated", debounce(key = "customer", period_ms = 1000))]
fn settle(invocation: &Invocation) {
    let cart = &invocation.payload;
    println!("customer {} settled with cart {}", cart["customer"], cart["n"]);
}

roost_sdk::main!(settle);
