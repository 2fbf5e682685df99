//! Subscribes to two event types and echoes what arrives, so the tests can
//! see which handler an event reached and with which payload.

use roost_sdk::{Invocation, Trigger, on_event};

fn echo(handler: &str, invocation: &Invocation) {
    let event = match &invocation.trigger {
        Trigger::Event { name } => name.as_str(),
        _ => "(not an event)",
    };
    println!("{handler} got {event}: {}", invocation.payload);
}

#[on_event("order.created")]
fn on_created(invocation: &Invocation) {
    echo("on_created", invocation);
}

#[on_event("order.paid")]
fn on_paid(invocation: &Invocation) {
    echo("on_paid", invocation);
}

roost_sdk::main!(on_created, on_paid);
