//! Fires every second and prints the tick it was started for. The cluster
//! tests count these runs: one per tick across all nodes, no gaps.

use roost_sdk::{Invocation, on_schedule};

#[on_schedule("* * * * * *")]
fn second(invocation: &Invocation) {
    println!("tick {}", invocation.payload["tick_at"]);
}

roost_sdk::main!(second);
