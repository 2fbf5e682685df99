//! The third script of the rally (see `ping` and `pong`): the one that ends
//! a rally emits `rally.over`, and this script counts it in its state
//! (`rallies`), so a chain of three scripts ends in a write roost owns.

use roost_sdk::{Invocation, on_event, state};

#[on_event("rally.over")]
fn record(invocation: &Invocation) -> roost_sdk::Result {
    let rallies = state::get::<u64>("rallies")?.unwrap_or(0) + 1;
    state::set("rallies", &rallies)?;
    println!(
        "rally {rallies} over after {} hits",
        invocation.payload["hits"]
    );
    Ok(())
}

roost_sdk::main!(record);
