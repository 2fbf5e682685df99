//! A cron heartbeat: one scheduled handler, plus a manual one to show that a
//! script can have several.

use roost_sdk::{Invocation, Trigger, handler, on_schedule};

#[on_schedule("0 */5 * * * *")]
fn beat(invocation: &Invocation) {
    match &invocation.trigger {
        Trigger::Schedule { cron, .. } => println!("heartbeat: tick of `{cron}`"),
        other => println!("heartbeat: run by {other:?}"),
    }
}

#[handler]
fn status() {
    println!("heartbeat: ok");
}

roost_sdk::main!(beat, status);
