//! A stand-in API whose answers the test writes in advance: a queue of
//! (status, headers, body) answers, then a default. It records every
//! request with the moment it arrived, so tests can check what was sent,
//! how often, and how far apart.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON request body")
    }
}

type Answer = (u16, Vec<(String, String)>, Value);

#[derive(Default)]
struct Script {
    queue: VecDeque<Answer>,
    default: Option<Answer>,
    seen: Vec<Seen>,
}

/// A running scripted API; it serves until the test ends.
#[derive(Clone)]
pub struct Scripted {
    pub base: String,
    script: Arc<Mutex<Script>>,
}

impl Scripted {
    /// Answers `default_body` with 200 once the queue is empty.
    pub async fn start(default_body: Value) -> Self {
        let script = Arc::new(Mutex::new(Script {
            default: Some((200, Vec::new(), default_body)),
            ..Script::default()
        }));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, script }
    }

    /// The next request gets this answer (answers queue up in order).
    pub fn then(&self, status: u16, headers: &[(&str, &str)], body: Value) -> &Self {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.script
            .lock()
            .unwrap()
            .queue
            .push_back((status, headers, body));
        self
    }

    /// Every request after the queue gets this answer.
    pub fn otherwise(&self, status: u16, body: Value) {
        self.script.lock().unwrap().default = Some((status, Vec::new(), body));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }

    pub fn forget(&self) {
        self.script.lock().unwrap().seen.clear();
    }
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut script = script.lock().unwrap();
    script.seen.push(Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers,
        body: body.to_vec(),
        at: Instant::now(),
    });
    let (status, headers, body) = match script.queue.pop_front() {
        Some(next) => next,
        None => script.default.clone().expect("a default answer"),
    };
    let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    for (name, value) in headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}
