//! Declares two integrations and prints the environment a run receives,
//! values included: the tests use it to check that a run gets exactly its
//! declared integrations' credentials (and roost's own variables), nothing
//! of other integrations, other users or the host.

use roost_sdk::{Invocation, handler};

roost_sdk::uses_integrations!("sendgrid", "openai");

#[handler]
fn report(invocation: &Invocation) {
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (key, value) in vars {
        println!("{key}={value}");
    }
    eprintln!("payload: {}", invocation.payload);
}

roost_sdk::main!(report);
