//! `POST roost.internal/v1/http/response`: an HTTP-triggered run's answer
//! to its caller, kept with the run and recorded with its success (see
//! `triggers/http.rs`, which hands it to the caller). `POST
//! roost.internal/v1/tool/result`: an MCP tool call's result, kept the
//! same way as a JSON answer (see `mcp/script_tools.rs`).

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

/// Who waits for a run's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Nobody: the run answers no one.
    Nobody,
    /// An HTTP request to one of the script's handlers.
    Http,
    /// An agent's MCP tool call.
    Tool,
}

/// Where one run's response waits for the run's end.
pub(crate) struct HttpReplySlot {
    /// Who started the run, and so what answer it may give.
    caller: Caller,
    /// The run's credential values, masked in what it answers like in
    /// everything else it leaves.
    masker: Masker,
    reply: Mutex<Option<HttpReply>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolResult {
    result: serde_json::Value,
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
    pub(crate) fn new(caller: Caller, masker: Masker) -> Self {
        Self {
            caller,
            masker,
            reply: Mutex::new(None),
        }
    }

    /// Takes a tool call's result (`{"result": <any JSON>}`), kept as a
    /// JSON answer; refuses a second one.
    pub(crate) fn handle_tool(&self, body: &[u8]) -> HostResponse {
        if self.caller != Caller::Tool {
            return refuse(
                409,
                "not_tool_call",
                "this run was not started by an MCP tool call; it has no result to give".into(),
            );
        }
        if body.len() > MAX_HTTP_BODY {
            return refuse(
                400,
                "invalid_result",
                format!(
                    "the result is {} bytes; a tool answers with at most {MAX_HTTP_BODY}",
                    body.len()
                ),
            );
        }
        let sent: ToolResult = match serde_json::from_slice(body) {
            Ok(sent) => sent,
            Err(e) => return refuse(400, "invalid_result", format!("the result: {e}")),
        };
        let result = self.masker.mask_json(sent.result);
        let reply = HttpReply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&result).expect("a JSON value serialises"),
        };
        self.keep(reply)
    }

    /// Takes the run's response, checked; refuses a second one.
    pub(crate) fn handle(&self, body: &[u8]) -> HostResponse {
        if self.caller != Caller::Http {
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
        self.keep(reply)
    }

    fn keep(&self, reply: HttpReply) -> HostResponse {
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
        let slot = HttpReplySlot::new(Caller::Http, Masker::new([]));
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
        let slot = HttpReplySlot::new(Caller::Http, Masker::new(["sk-live-0123456789"]));
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
        let slot = HttpReplySlot::new(Caller::Nobody, Masker::new([]));
        assert_eq!(send(&slot, json!({ "status": 200 })), 409);
        let result = json!({ "result": 1 }).to_string();
        assert_eq!(slot.handle_tool(result.as_bytes()).status, 409);
        assert!(slot.take().is_none());
        let http = HttpReplySlot::new(Caller::Http, Masker::new([]));
        assert_eq!(http.handle_tool(result.as_bytes()).status, 409);
    }

    #[test]
    fn a_tool_result_is_kept_once_as_json_with_secrets_masked() {
        let slot = HttpReplySlot::new(Caller::Tool, Masker::new(["sk-\"quoted\"-1234"]));
        assert_eq!(
            slot.handle_tool(b"{\"result\": 1, \"more\": 2}").status,
            400
        );
        assert_eq!(
            slot.handle(json!({ "status": 200 }).to_string().as_bytes())
                .status,
            409
        );
        let result = json!({ "result": { "key": "sk-\"quoted\"-1234", "n": [1, 2] } });
        assert_eq!(slot.handle_tool(result.to_string().as_bytes()).status, 200);
        assert_eq!(slot.handle_tool(result.to_string().as_bytes()).status, 409);
        let reply = slot.take().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["n"], json!([1, 2]));
        assert!(
            !String::from_utf8_lossy(&reply.body).contains("quoted"),
            "{body}"
        );
        let large = format!("{{\"result\": \"{}\"}}", "x".repeat(MAX_HTTP_BODY));
        let fresh = HttpReplySlot::new(Caller::Tool, Masker::new([]));
        assert_eq!(fresh.handle_tool(large.as_bytes()).status, 400);
    }
}
