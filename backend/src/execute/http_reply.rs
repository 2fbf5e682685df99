//! `POST roost.internal/v1/http/response`: an HTTP-triggered run's answer
//! to its caller, kept with the run and recorded with its success (see
//! `triggers/http.rs`, which hands it to the caller).

use std::sync::Mutex;

use base64::Engine as _;
use roost_sandbox::HostResponse;
use serde::Deserialize;
use serde_json::json;

use super::masking::Masker;
use crate::store::HttpReply;
use crate::triggers::http::{MAX_HTTP_BODY, is_hop_by_hop};

/// Most headers one response may carry.
const MAX_HEADERS: usize = 100;

/// Where one run's response waits for the run's end.
pub(crate) struct HttpReplySlot {
    /// Whether the run was started by an HTTP request.
    accepts: bool,
    /// The run's credential values, masked in what it answers like in
    /// everything else it leaves.
    masker: Masker,
    reply: Mutex<Option<HttpReply>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sent {
    status: u16,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body_base64: String,
}

impl HttpReplySlot {
    pub(crate) fn new(accepts: bool, masker: Masker) -> Self {
        Self {
            accepts,
            masker,
            reply: Mutex::new(None),
        }
    }

    /// Takes the run's response, checked; refuses a second one.
    pub(crate) fn handle(&self, body: &[u8]) -> HostResponse {
        if !self.accepts {
            return refuse(
                409,
                "not_http",
                "this run was not started by an HTTP request; it has nobody to answer".into(),
            );
        }
        let sent: Sent = match serde_json::from_slice(body) {
            Ok(sent) => sent,
            Err(e) => return refuse(400, "invalid_response", format!("the response: {e}")),
        };
        let reply = match check(sent, &self.masker) {
            Ok(reply) => reply,
            Err(message) => return refuse(400, "invalid_response", message),
        };
        let mut slot = self.reply.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return refuse(
                409,
                "already_answered",
                "this run has answered already".into(),
            );
        }
        *slot = Some(reply);
        HostResponse::json(200, &json!({ "accepted": true }))
    }

    /// The response, once; `None` if the run sent none.
    pub(crate) fn take(&self) -> Option<HttpReply> {
        self.reply.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A response the server can send: a real status, valid headers (those
/// only a connection may set dropped), a body within the cap.
fn check(sent: Sent, masker: &Masker) -> Result<HttpReply, String> {
    if !(200..=599).contains(&sent.status) {
        return Err(format!(
            "status {} is not one roost answers with (200 to 599)",
            sent.status
        ));
    }
    if sent.headers.len() > MAX_HEADERS {
        return Err(format!("a response carries at most {MAX_HEADERS} headers"));
    }
    let mut headers = Vec::new();
    for (name, value) in sent.headers {
        let name = name.to_ascii_lowercase();
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || axum::http::HeaderValue::from_str(&value).is_err()
        {
            return Err(format!("header `{name}` is not a valid HTTP header"));
        }
        // Scripts answer on roost's own origin: none may set its cookies.
        if is_hop_by_hop(&name) || name == "content-length" || name == "set-cookie" {
            continue;
        }
        headers.push((name, masker.mask_str(&value)));
    }
    let body = base64::engine::general_purpose::STANDARD
        .decode(sent.body_base64.as_bytes())
        .map_err(|e| format!("body_base64: {e}"))?;
    if body.len() > MAX_HTTP_BODY {
        return Err(format!(
            "the body is {} bytes; a response takes at most {MAX_HTTP_BODY}",
            body.len()
        ));
    }
    Ok(HttpReply {
        status: sent.status,
        headers,
        body: masker.mask(&body, false),
    })
}

fn refuse(status: u16, code: &str, message: String) -> HostResponse {
    HostResponse::json(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(slot: &HttpReplySlot, body: serde_json::Value) -> u16 {
        slot.handle(body.to_string().as_bytes()).status
    }

    #[test]
    fn a_response_is_checked_kept_once_and_cleaned_of_connection_headers() {
        let slot = HttpReplySlot::new(true, Masker::new([]));
        assert_eq!(send(&slot, json!({ "status": 99 })), 400);
        assert_eq!(
            send(
                &slot,
                json!({ "status": 200, "headers": [["bad name", "x"]] })
            ),
            400
        );
        assert_eq!(
            send(&slot, json!({ "status": 200, "body_base64": "%%%" })),
            400
        );
        let ok = json!({
            "status": 201,
            "headers": [
                ["Connection", "close"],
                ["X-Kept", "1"],
                ["content-length", "9"],
                ["Set-Cookie", "session=stolen"],
            ],
            "body_base64": "aGk=",
        });
        assert_eq!(send(&slot, ok.clone()), 200);
        assert_eq!(send(&slot, ok), 409, "a second answer is refused");
        let reply = slot.take().unwrap();
        assert_eq!(reply.status, 201);
        assert_eq!(reply.headers, vec![("x-kept".to_string(), "1".to_string())]);
        assert_eq!(reply.body, b"hi");
    }

    #[test]
    fn the_runs_credentials_are_masked_in_its_answer() {
        let slot = HttpReplySlot::new(true, Masker::new(["sk-live-0123456789"]));
        let answer = json!({
            "status": 200,
            "headers": [["x-key", "sk-live-0123456789"]],
            "body_base64": base64::engine::general_purpose::STANDARD
                .encode("the key is sk-live-0123456789"),
        });
        assert_eq!(send(&slot, answer), 200);
        let reply = slot.take().unwrap();
        let shown = format!("{reply:?}{}", String::from_utf8_lossy(&reply.body));
        assert!(!shown.contains("sk-live-0123456789"), "{shown}");
        assert!(String::from_utf8_lossy(&reply.body).starts_with("the key is "));
    }

    #[test]
    fn a_run_not_started_by_a_request_has_nobody_to_answer() {
        let slot = HttpReplySlot::new(false, Masker::new([]));
        assert_eq!(send(&slot, json!({ "status": 200 })), 409);
        assert!(slot.take().is_none());
    }
}
