//! On `user.signed_up`, sends a welcome email through SendGrid. Needs the
//! `sendgrid` integration: roost refuses to deploy it until the user has
//! stored a SendGrid API key, then injects it as `SENDGRID_API_KEY`.

use roost_sdk::{Error, Invocation, on_event};

roost_sdk::uses_integrations!("sendgrid");

const SENDGRID_SEND: &str = "https://api.sendgrid.com/v3/mail/send";

#[on_event("user.signed_up")]
fn welcome(invocation: &Invocation) -> roost_sdk::Result {
    let api_key = std::env::var("SENDGRID_API_KEY")
        .map_err(|_| Error::msg("SENDGRID_API_KEY is not set: connect the sendgrid integration"))?;
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
    let authorization = format!("Bearer {api_key}");
    let response = roost_sdk::http::send(
        "POST",
        SENDGRID_SEND,
        &[
            ("authorization", &authorization),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )?;
    if response.status >= 300 {
        return Err(Error::msg(format!(
            "SendGrid answered {}: {}",
            response.status,
            response.text()
        )));
    }
    println!("welcome email to {email} accepted ({})", response.status);
    Ok(())
}

roost_sdk::main!(welcome);
