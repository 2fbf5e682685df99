//! On `user.signed_up`, sends a welcome email through SendGrid. Needs the
//! `sendgrid` integration: roost refuses to deploy it until the user has
//! stored a SendGrid API key, then injects it as `SENDGRID_API_KEY`.
//!
//! SendGrid has no typed client in the SDK; `http::init!` declares the
//! integration and gives a client that adds the key where sendgrid's
//! definition puts it (`Authorization: Bearer …`) to paths under its base URL.

use roost_sdk::{Error, Invocation, on_event};

#[on_event("user.signed_up")]
fn welcome(invocation: &Invocation) -> roost_sdk::Result {
    let sendgrid = roost_sdk::http::init!("sendgrid");
    let email = invocation.payload["email"]
        .as_str()
        .ok_or_else(|| Error::msg("the payload needs an `email` field"))?;
    let name = invocation.payload["name"].as_str().unwrap_or("there");
    let body = serde_json::json!({
        "personalizations": [{ "to": [{ "email": email }] }],
        "from": { "email": "hello@example.com" },
        "subject": "Welcome!",
        "content": [{ "type": "text/plain", "value": format!("Hi {name}, welcome aboard.") }],
    });
    let response = sendgrid.post_json("/v3/mail/send", &body)?;
    println!("welcome email to {email} accepted ({})", response.status);
    Ok(())
}

roost_sdk::main!(welcome);
