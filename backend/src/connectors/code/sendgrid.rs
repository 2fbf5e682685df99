//! `sendgrid.send_email`: the flat input becomes a v3 mail body, and the
//! output comes from the answer's status and `X-Message-Id` header
//! (SendGrid answers 202 with an empty body).

use serde_json::{Map, Value, json};

use crate::connectors::error::CallError;
use crate::connectors::mapping::{OperationCode, ProviderRequest, ProviderResponse};

pub(super) struct SendEmail;

impl OperationCode for SendEmail {
    fn request(&self, input: &Value, _: &Map<String, Value>) -> Result<ProviderRequest, CallError> {
        let mut content = Vec::new();
        for kind in ["text", "html"] {
            if let Some(value) = input[kind].as_str() {
                content.push(json!({ "type": format!("text/{}", if kind == "text" { "plain" } else { "html" }), "value": value }));
            }
        }
        // `to` is one address or a list of them.
        let to: Vec<Value> = match &input["to"] {
            Value::Array(many) => many.iter().map(|email| json!({ "email": email })).collect(),
            one => vec![json!({ "email": one })],
        };
        let body = json!({
            "personalizations": [{ "to": to }],
            "from": { "email": input["from"] },
            "subject": input["subject"],
            "content": content,
        });
        Ok(ProviderRequest {
            method: http::Method::POST,
            path: "/v3/mail/send".into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Some(body),
            idempotent: false,
        })
    }

    fn output(&self, response: &ProviderResponse) -> Result<Value, CallError> {
        let mut output = json!({ "statusCode": response.status });
        if let Some(id) = response
            .headers
            .get("x-message-id")
            .and_then(|v| v.to_str().ok())
        {
            output["messageId"] = Value::String(id.to_string());
        }
        Ok(output)
    }
}
