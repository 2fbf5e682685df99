//! A sync that runs every second against an upstream API that is down, so
//! every run fails: the alert tests check that its failures reach the user
//! grouped (one message per window with a count), not one per run.

use roost_sdk::on_schedule;

#[on_schedule("* * * * * *")]
fn sync(_: &roost_sdk::Invocation) -> roost_sdk::Result {
    Err(roost_sdk::Error::msg("the upstream API is down (503)"))
}

roost_sdk::main!(sync);
