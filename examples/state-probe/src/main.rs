//! Works on its state as the payload's `steps` say, one after another,
//! printing each answer as a line of JSON, so a test can drive every state
//! operation from outside:
//!
//! ```json
//! {"steps": [
//!   {"get": "k"}, {"getMany": ["a", "b"]}, {"set": ["k", 1]}, {"setTtl": ["k", 1, 60]},
//!   {"delete": "k"}, {"flush": null},
//!   {"cas": ["k", null, 1]}, {"list": "prefix/"}, {"seen": ["orders", "id-1"]},
//!   {"message": "text"}, {"sleepMs": 500}, {"fail": "why"}, {"counters": 10}
//! ]}
//! ```
//!
//! A step that errors fails the run with that error; `fail` fails it on
//! purpose; `message` leaves an outbox message (so a test can see that
//! state and messages are kept together).

use std::time::Duration;

use roost_sdk::messaging::SendMessage;
use roost_sdk::state::{self, SeenSet};
use roost_sdk::{Error, Invocation, handler};
use serde_json::{Value, json};

#[handler]
fn probe(invocation: &Invocation) -> roost_sdk::Result {
    let outbox = roost_sdk::messaging::init!();
    let steps = invocation.payload["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for step in &steps {
        let (op, arg) = step
            .as_object()
            .and_then(|o| o.iter().next())
            .ok_or_else(|| Error::msg(format!("a step is one operation: {step}")))?;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let answer = match op.as_str() {
            "get" => json!({ "get": text(arg), "value": state::get::<Value>(&text(arg))? }),
            "getMany" => {
                let keys: Vec<String> = arg.as_array().into_iter().flatten().map(text).collect();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                json!({ "getMany": keys, "values": state::get_many::<Value>(&keys)? })
            }
            // Reads counters `counter-0` … `counter-{n-1}` in one request and
            // adds one to each (the state bench's run; 0 touches nothing).
            // `{"counters": [n, "read"|"write"]}` only reads or only writes.
            "counters" => {
                let (n, only) = match arg {
                    Value::Array(a) => (a[0].as_u64().unwrap_or(0) as usize, text(&a[1])),
                    n => (n.as_u64().unwrap_or(0) as usize, String::new()),
                };
                let keys: Vec<String> = (0..n).map(|k| format!("counter-{k}")).collect();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                let values = if keys.is_empty() || only == "write" {
                    vec![None; keys.len()]
                } else {
                    state::get_many::<u64>(&keys)?
                };
                if only != "read" {
                    for (key, value) in keys.iter().zip(&values) {
                        state::set(key, &(value.unwrap_or(0) + 1))?;
                    }
                }
                json!({ "counters": n })
            }
            "flush" => {
                state::flush()?;
                json!({ "flushed": true })
            }
            "set" => {
                state::set(&text(&arg[0]), &arg[1])?;
                json!({ "set": text(&arg[0]) })
            }
            "setTtl" => {
                let ttl = Duration::from_secs(arg[2].as_u64().unwrap_or(1));
                state::set_with_ttl(&text(&arg[0]), &arg[1], ttl)?;
                json!({ "setTtl": text(&arg[0]) })
            }
            "delete" => {
                state::delete(&text(arg))?;
                json!({ "delete": text(arg) })
            }
            "cas" => {
                let (expected, new) = (&arg[1], &arg[2]);
                let swapped = state::compare_and_set(
                    &text(&arg[0]),
                    (!expected.is_null()).then_some(expected),
                    (!new.is_null()).then_some(new),
                )?;
                json!({ "cas": text(&arg[0]), "swapped": swapped })
            }
            "list" => {
                let entries = state::list::<Value>(&text(arg))?;
                json!({ "list": text(arg), "entries": entries })
            }
            "seen" => {
                let set = SeenSet::new(&text(&arg[0]), Duration::from_secs(3600));
                json!({ "seen": text(&arg[1]), "new": set.insert(&text(&arg[1]))? })
            }
            "message" => {
                let sent = outbox.send_message(&SendMessage {
                    body: text(arg),
                    ..SendMessage::default()
                })?;
                json!({ "message": sent.id })
            }
            "sleepMs" => {
                std::thread::sleep(Duration::from_millis(arg.as_u64().unwrap_or(0)));
                json!({ "slept": arg })
            }
            "fail" => return Err(Error::msg(format!("failing on purpose: {}", text(arg)))),
            other => return Err(Error::msg(format!("unknown step `{other}`"))),
        };
        println!("{answer}");
    }
    Ok(())
}

roost_sdk::main!(probe);
