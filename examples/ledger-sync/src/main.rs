//! Writes orders to a ledger that takes one writer per customer: `order.sync`
//! runs one at a time per `customer` (in the order the events came), while
//! other customers' syncs run beside it. `report.export` runs at most two at
//! a time in all (no key: one for every payload). Each run takes `ms`
//! milliseconds (200 by default), standing for the ledger's slow API.

use roost_sdk::{Invocation, on_event};

fn work(invocation: &Invocation) {
    let ms = invocation.payload["ms"].as_u64().unwrap_or(200);
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

#[on_event("order.sync", concurrency(key = "customer", limit = 1))]
fn sync(invocation: &Invocation) {
    work(invocation);
    let order = &invocation.payload;
    println!("customer {} order {}", order["customer"], order["n"]);
}

#[on_event("report.export", concurrency(limit = 2))]
fn export(invocation: &Invocation) {
    work(invocation);
    println!("export {}", invocation.payload["n"]);
}

roost_sdk::main!(sync, export);
