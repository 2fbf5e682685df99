//! Local HTTP servers standing in for the Google and Slack APIs: they record
//! every request (method, path, query, Authorization, body), refuse a
//! bearer token other than the one the test expects as the real APIs would,
//! and answer with the providers' documented shapes.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON request body")
    }

    /// The decoded value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(&format!(
            "http://x/?{}",
            self.query.as_deref().unwrap_or("")
        ))
        .unwrap();
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

#[derive(Clone, Copy)]
enum Provider {
    Google,
    Slack,
    SendGrid,
}

#[derive(Clone)]
struct Shared {
    provider: Provider,
    requests: Arc<Mutex<Vec<Recorded>>>,
    token: Arc<Mutex<Option<String>>>,
    /// A token refused although well formed (access revoked at the provider).
    refused: Arc<Mutex<Option<String>>>,
    /// Requests for this path are answered 500 once.
    fail_once: Arc<Mutex<Option<String>>>,
}

/// A running stand-in; it serves until the test ends.
pub struct StandIn {
    pub base: String,
    shared: Shared,
}

impl StandIn {
    /// The Gmail API: two unread messages.
    pub async fn google() -> Self {
        Self::start(Provider::Google).await
    }

    /// The Slack Web API.
    pub async fn slack() -> Self {
        Self::start(Provider::Slack).await
    }

    /// SendGrid's v3 Mail Send.
    pub async fn sendgrid() -> Self {
        Self::start(Provider::SendGrid).await
    }

    async fn start(provider: Provider) -> Self {
        let shared = Shared {
            provider,
            requests: Arc::default(),
            token: Arc::default(),
            refused: Arc::default(),
            fail_once: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, shared }
    }

    /// Only `Bearer <token>` is accepted from now on.
    pub fn expect_token(&self, token: &str) {
        *self.shared.token.lock().unwrap() = Some(token.to_string());
        *self.shared.refused.lock().unwrap() = None;
    }

    /// Refuses `Bearer <token>` from now on (as after the user revoked
    /// roost's access), and accepts any other token.
    pub fn refuse_token(&self, token: &str) {
        *self.shared.token.lock().unwrap() = None;
        *self.shared.refused.lock().unwrap() = Some(token.to_string());
    }

    /// Answers the next request for `path` with 500 (an outage).
    pub fn fail_once(&self, path: &str) {
        *self.shared.fail_once.lock().unwrap() = Some(path.to_string());
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

async fn answer(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: body.to_vec(),
    };
    shared.requests.lock().unwrap().push(recorded.clone());
    {
        let mut fail_once = shared.fail_once.lock().unwrap();
        if fail_once.as_deref() == Some(recorded.path.as_str()) {
            *fail_once = None;
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({ "error": { "code": 500, "message": "Internal error encountered.", "status": "INTERNAL" } })),
            )
                .into_response();
        }
    }
    let expected = shared.token.lock().unwrap().clone();
    let refused = shared.refused.lock().unwrap().clone();
    let authorized = match &expected {
        Some(token) => recorded.authorization.as_deref() == Some(&format!("Bearer {token}")),
        None => recorded.authorization.is_some(),
    } && refused
        .is_none_or(|token| recorded.authorization.as_deref() != Some(&format!("Bearer {token}")));
    match shared.provider {
        Provider::Google => google(&recorded, authorized),
        Provider::Slack => slack(&recorded, authorized),
        Provider::SendGrid => sendgrid(&recorded, authorized),
    }
}

/// Id, sender, subject and receive time (`internalDate`, ms).
const INBOX: [(&str, &str, &str, &str); 2] = [
    (
        "m1",
        "Ada Lovelace <ada@example.com>",
        "Quarterly report",
        "1764000000000",
    ),
    (
        "m2",
        "Bob <bob@example.com>",
        "Lunch on Friday?",
        "1764000600000",
    ),
];

fn google(request: &Recorded, authorized: bool) -> Response {
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": { "code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED" } })),
        )
            .into_response();
    }
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({ "error": { "code": 404, "message": "Requested entity was not found." } }),
            ),
        )
            .into_response()
    };
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/gmail/v1/users/me/messages") => axum::Json(json!({
            "messages": INBOX.iter().map(|(id, _, _, _)| json!({ "id": id, "threadId": format!("t-{id}") })).collect::<Vec<_>>(),
            "resultSizeEstimate": INBOX.len(),
        }))
        .into_response(),
        ("GET", path) => {
            let Some(id) = path.strip_prefix("/gmail/v1/users/me/messages/") else {
                return not_found();
            };
            let Some((_, from, subject, received)) =
                INBOX.iter().find(|(known, _, _, _)| *known == id)
            else {
                return not_found();
            };
            axum::Json(json!({
                "id": id,
                "threadId": format!("t-{id}"),
                "labelIds": ["INBOX", "UNREAD"],
                "snippet": "…",
                "internalDate": received,
                "payload": {
                    "mimeType": "text/plain",
                    "headers": [
                        { "name": "From", "value": from },
                        { "name": "Subject", "value": subject },
                    ],
                },
            }))
            .into_response()
        }
        ("POST", "/gmail/v1/users/me/messages/send") => {
            axum::Json(json!({ "id": "sent-1", "threadId": "t-sent-1", "labelIds": ["SENT"] }))
                .into_response()
        }
        _ => not_found(),
    }
}

fn slack(request: &Recorded, authorized: bool) -> Response {
    // Slack answers 200 with ok:false, whatever went wrong.
    if !authorized {
        return axum::Json(json!({ "ok": false, "error": "invalid_auth" })).into_response();
    }
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/api/chat.postMessage") => {
            let Ok(message) = serde_json::from_slice::<Value>(&request.body) else {
                return axum::Json(json!({ "ok": false, "error": "invalid_json" })).into_response();
            };
            if message["channel"].as_str().is_none_or(str::is_empty) {
                return axum::Json(json!({ "ok": false, "error": "channel_not_found" }))
                    .into_response();
            }
            axum::Json(json!({
                "ok": true,
                "channel": "C0INBOX",
                "ts": "1700000000.000100",
                "message": { "type": "message", "text": message["text"], "ts": "1700000000.000100", "bot_id": "B01" },
            }))
            .into_response()
        }
        ("GET", "/api/conversations.list") => axum::Json(json!({
            "ok": true,
            "channels": [{ "id": "C0INBOX", "name": "inbox", "is_channel": true }],
            "response_metadata": { "next_cursor": "" },
        }))
        .into_response(),
        _ => axum::Json(json!({ "ok": false, "error": "unknown_method" })).into_response(),
    }
}

fn sendgrid(request: &Recorded, authorized: bool) -> Response {
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "errors": [{ "message": "The provided authorization grant is invalid, expired, or revoked" }] })),
        )
            .into_response();
    }
    match (request.method.as_str(), request.path.as_str()) {
        // 202 Accepted, empty body, the message id in a header.
        ("POST", "/v3/mail/send") => {
            (StatusCode::ACCEPTED, [("x-message-id", "msg-1")]).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
