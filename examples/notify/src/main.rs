//! Leaves a message in the user's roost outbox (`GET /v1/messages`): the
//! payload's `body`, `subject` and `channel`, or a default note. Needs only
//! `messaging`, which has nothing to connect. With `then_sleep_ms`, it
//! sleeps after sending, so a test can kill the server between a message
//! and the run's end.

use roost_sdk::messaging::SendMessage;
use roost_sdk::{Invocation, handler};

#[handler]
fn notify(invocation: &Invocation) -> roost_sdk::Result {
    let outbox = roost_sdk::messaging::init!();
    let text = |key: &str| invocation.payload[key].as_str().map(str::to_string);
    let message = SendMessage {
        channel: text("channel"),
        to: text("to"),
        subject: text("subject"),
        body: text("body").unwrap_or_else(|| "hello from roost".to_string()),
    };
    let stored = outbox.send_message(&message)?;
    println!("stored message {}", stored.id);
    if let Some(ms) = invocation.payload["then_sleep_ms"].as_u64() {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    Ok(())
}

roost_sdk::main!(notify);
