//! `gmail.send_message`: Gmail takes the whole RFC 2822 message,
//! base64url-encoded, in `raw`.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::connectors::error::CallError;
use crate::connectors::mapping::{OperationCode, ProviderRequest, ProviderResponse};
use crate::connectors::schema::SchemaViolation;

pub(super) struct SendMessage;

impl OperationCode for SendMessage {
    fn request(&self, input: &Value, _: &Map<String, Value>) -> Result<ProviderRequest, CallError> {
        let field = |name: &str| input[name].as_str().unwrap_or_default();
        for name in ["to", "subject"] {
            // A line break would let the value add headers of its own.
            if field(name).contains(['\r', '\n']) {
                return Err(CallError::InvalidInput(SchemaViolation {
                    field: name.into(),
                    reason: "must not contain a line break".into(),
                }));
            }
        }
        let message = format!(
            "To: {}\r\nSubject: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}",
            field("to"),
            encoded_word(field("subject")),
            field("body"),
        );
        Ok(ProviderRequest {
            method: http::Method::POST,
            path: "/gmail/v1/users/me/messages/send".into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Some(json!({
                "raw": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(message),
            })),
            idempotent: false,
        })
    }

    fn output(&self, response: &ProviderResponse) -> Result<Value, CallError> {
        response.json()
    }
}

/// A subject outside ASCII as an RFC 2047 encoded word.
fn encoded_word(text: &str) -> String {
    if text.is_ascii() {
        text.to_string()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_rfc_2822_in_base64url_and_header_injection_is_refused() {
        let request = SendMessage
            .request(
                &json!({ "to": "a@example.com", "subject": "Grüße", "body": "hi" }),
                &Map::new(),
            )
            .unwrap();
        let raw = request.body.unwrap()["raw"].as_str().unwrap().to_string();
        let message = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .unwrap();
        let message = String::from_utf8(message).unwrap();
        assert!(message.starts_with("To: a@example.com\r\nSubject: =?UTF-8?B?"));
        assert!(message.ends_with("\r\n\r\nhi"));

        let err = SendMessage
            .request(
                &json!({ "to": "a@example.com\r\nBcc: x@evil.test", "subject": "s", "body": "b" }),
                &Map::new(),
            )
            .unwrap_err();
        assert_eq!(err.field(), Some("to"));
    }
}
