//! Calls `acme` methods on the host (`roost_sdk::integrations`) as the
//! payload lists them, and reports what the sandbox itself can see: the
//! names of its env vars and whether a direct request reaches a URL. The
//! tests define `acme` themselves and use this script to check schema
//! refusals, retries, rate limits, token refresh and host-only credentials.
//!
//! Payload: `{"calls": [{"method": "get_widget", "input": {…}}], "direct": "http://…"}`

use roost_sdk::{Invocation, handler};

#[handler]
fn calls(invocation: &Invocation) -> roost_sdk::Result {
    let acme = roost_sdk::integrations::declare!("acme");
    let mut names: Vec<String> = std::env::vars()
        .map(|(name, value)| format!("{name} ({} bytes)", value.len()))
        .collect();
    names.sort();
    println!("env: {}", names.join(", "));
    if let Some(url) = invocation.payload["direct"].as_str() {
        match roost_sdk::http::get(url) {
            Ok(response) => println!("direct: status {}", response.status),
            Err(err) => println!("direct: failed: {err}"),
        }
    }
    let calls = invocation.payload["calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for call in calls {
        let method = call["method"].as_str().unwrap_or_default();
        let result: Result<serde_json::Value, _> = acme.call(method, &call["input"]);
        match result {
            // The length too: roost masks credentials in stdout, so only
            // the length shows what the script itself received.
            Ok(output) => println!(
                "call {method}: ok {output} ({} bytes)",
                output.to_string().len()
            ),
            Err(err) => println!("call {method}: error {:?} | {err}", err.kind()),
        }
    }
    Ok(())
}

roost_sdk::main!(calls);
