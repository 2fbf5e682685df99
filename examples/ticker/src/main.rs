//! Ticks every two seconds (a cron expression with a seconds field), so the
//! tests can watch a schedule fire in real time.

use roost_sdk::{Invocation, on_schedule};

#[on_schedule("*/2 * * * * *")]
fn tick(invocation: &Invocation) {
    println!("tick at {}", invocation.payload["tick_at"]);
}

roost_sdk::main!(tick);
