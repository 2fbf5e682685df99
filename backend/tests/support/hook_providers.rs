//! A stand-in for the webhook-subscription APIs of Shopify (Admin REST
//! `webhooks.json`) and GitHub (repository hooks): it keeps the
//! subscriptions it was asked to create until they are deleted, with the
//! documented request and answer shapes, and refuses calls without the
//! provider's credential header.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde_json::{Value, json};

/// One live subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// `shopify` or `owner/repo`.
    pub scope: String,
    /// Shopify's topic, or GitHub's events.
    pub topics: Vec<String>,
    /// Where deliveries go.
    pub address: String,
    /// GitHub's `config.secret`.
    pub secret: Option<String>,
}

#[derive(Clone, Default)]
struct Shared {
    next: Arc<Mutex<i64>>,
    live: Arc<Mutex<BTreeMap<i64, Live>>>,
}

pub struct HookProviders {
    pub base: String,
    shared: Shared,
}

impl HookProviders {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let app = axum::Router::new()
            .route("/admin/api/2024-10/webhooks.json", post(shopify_create))
            .route("/admin/api/2024-10/webhooks/{file}", delete(shopify_delete))
            .route("/repos/{owner}/{repo}/hooks", post(github_create))
            .route("/repos/{owner}/{repo}/hooks/{id}", delete(github_delete))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, shared }
    }

    /// The live subscriptions, sorted by scope and topics.
    pub fn live(&self) -> Vec<Live> {
        let mut live: Vec<Live> = self.shared.live.lock().unwrap().values().cloned().collect();
        live.sort_by(|a, b| (&a.scope, &a.topics).cmp(&(&b.scope, &b.topics)));
        live
    }

    /// Waits (up to 10 s) until `check` holds of the live subscriptions.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&[Live]) -> bool) -> Vec<Live> {
        for _ in 0..200 {
            let live = self.live();
            if check(&live) {
                return live;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{what}: the provider has {:#?}", self.live());
    }
}

impl Shared {
    fn add(&self, live: Live) -> i64 {
        let mut next = self.next.lock().unwrap();
        *next += 1;
        self.live.lock().unwrap().insert(*next, live);
        *next
    }

    fn remove(&self, id: i64, scope: &str) -> bool {
        let mut all = self.live.lock().unwrap();
        match all.get(&id) {
            Some(live) if live.scope == scope => all.remove(&id).is_some(),
            _ => false,
        }
    }
}

fn refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "errors": "[API] Invalid API key or access token" })),
    )
        .into_response()
}

fn shopify_token(headers: &HeaderMap) -> bool {
    headers
        .get("x-shopify-access-token")
        .is_some_and(|v| v.as_bytes().starts_with(b"shpat_"))
}

fn github_token(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7)
}

async fn shopify_create(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !shopify_token(&headers) {
        return refused();
    }
    let hook = &body["webhook"];
    let (Some(topic), Some(address)) = (hook["topic"].as_str(), hook["address"].as_str()) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "errors": { "topic": ["can't be blank"] } })),
        )
            .into_response();
    };
    let id = shared.add(Live {
        scope: "shopify".into(),
        topics: vec![topic.into()],
        address: address.into(),
        secret: None,
    });
    let answer = json!({ "webhook": {
        "id": id, "topic": topic, "address": address, "format": hook["format"],
        "api_version": "2024-10", "created_at": "2026-12-06T10:00:00-05:00", "updated_at": "2026-12-06T10:00:00-05:00",
    }});
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn shopify_delete(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    if !shopify_token(&headers) {
        return refused();
    }
    let id = file.trim_end_matches(".json").parse().unwrap_or(-1);
    if shared.remove(id, "shopify") {
        Json(json!({})).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "errors": "Not Found" })),
        )
            .into_response()
    }
}

async fn github_create(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((owner, repo)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if !github_token(&headers) {
        return refused();
    }
    let events: Vec<String> = body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect();
    let Some(url) = body["config"]["url"].as_str() else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "message": "Validation Failed" })),
        )
            .into_response();
    };
    let id = shared.add(Live {
        scope: format!("{owner}/{repo}"),
        topics: events.clone(),
        address: url.into(),
        secret: body["config"]["secret"].as_str().map(str::to_string),
    });
    let answer = json!({
        "id": id, "name": body["name"], "active": body["active"], "events": events,
        "config": { "url": url, "content_type": body["config"]["content_type"], "insecure_ssl": "0" },
        "created_at": "2026-12-06T15:00:00Z",
    });
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn github_delete(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((owner, repo, id)): Path<(String, String, i64)>,
) -> Response {
    if !github_token(&headers) {
        return refused();
    }
    if shared.remove(id, &format!("{owner}/{repo}")) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "message": "Not Found" })),
        )
            .into_response()
    }
}
