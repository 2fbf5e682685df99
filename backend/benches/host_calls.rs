//! What a host-mediated integration call costs on top of the HTTP request
//! itself: `Connectors::call` (input schema check, declarative mapping,
//! credential placement, shared transport, output schema check) next to a
//! plain pooled reqwest GET of the same URL and a JSON decode, against the
//! same local stand-in API, one call at a time.
//!
//! `cargo bench -p roost --bench host_calls`

mod support;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use roost::connectors::{
    CallError, CallRequest, Connectors, CredentialSource, HostCredential, TransportPolicy,
};
use roost::registry::{
    IntegrationConfig, IntegrationDefinition, Placement, PlacementLocation, Registry, RunProfiles,
};
use serde_json::{Value, json};

const CALLS: usize = 5_000;
const WARM_UP: usize = 300;

struct FixedKey;

#[async_trait]
impl CredentialSource for FixedKey {
    async fn credential(
        &self,
        _: &str,
        _: &IntegrationDefinition,
    ) -> Result<Option<HostCredential>, CallError> {
        Ok(Some(HostCredential {
            parts: vec![(
                Placement {
                    location: PlacementLocation::Header,
                    name: "X-Api-Key".into(),
                    prefix: None,
                },
                "bench-key".into(),
            )],
        }))
    }
    async fn credential_refused(
        &self,
        _: &str,
        _: &IntegrationDefinition,
        _: &HostCredential,
    ) -> Result<HostCredential, CallError> {
        Err(CallError::NotConnected {
            message: "the bench's key is never refused".into(),
        })
    }
}

fn definition() -> Value {
    json!({
        "integrationId": "bench", "name": "Bench", "description": "A widgets API.",
        "version": "1.0.0", "authType": "apikey",
        "credentials": [{ "key": "api_key", "type": "api_key", "description": "key",
            "envVar": "BENCH_API_KEY", "required": true,
            "placement": { "in": "header", "name": "X-Api-Key" } }],
        "setupUrlTemplate": "{base_url}/integrations/bench/setup?user={user_id}",
        "docsUrl": "https://bench.test/docs", "outboundHosts": ["api.bench.test"],
        "configSchema": { "type": "object", "properties": {
            "baseUrl": { "type": "string", "format": "uri" } }, "additionalProperties": false },
        "methods": [{
            "id": "get_widget", "name": "Get widget", "description": "One widget.",
            "inputSchema": { "type": "object", "properties": {
                "id": { "type": "string", "minLength": 1 }, "fields": { "type": "string" } },
                "required": ["id"], "additionalProperties": false },
            "outputSchema": { "type": "object", "properties": {
                "id": { "type": "string" }, "name": { "type": "string" },
                "tags": { "type": "array", "items": { "type": "string" } } },
                "required": ["id", "name"] },
            "http": { "method": "GET", "path": "/widgets/{id}" }
        }]
    })
}

fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}

#[tokio::main]
async fn main() {
    let app = axum::Router::new().route(
        "/widgets/{id}",
        axum::routing::get(
            |axum::extract::Path(id): axum::extract::Path<String>| async move {
                axum::Json(json!({ "id": id, "name": "gear", "tags": ["small", "steel"] }))
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bench.json"), definition().to_string()).unwrap();
    let registry = Registry::load(Some(dir.path())).unwrap();
    let mut config = IntegrationConfig::new();
    config.insert(
        "bench".into(),
        json!({ "baseUrl": base }).as_object().unwrap().clone(),
    );
    let profiles = RunProfiles::build(&registry, &config).unwrap();
    let connectors = Connectors::new(&registry, &profiles, TransportPolicy::default()).unwrap();
    let declared = vec!["bench".to_string()];
    let input = br#"{"id":"w-42","fields":"all"}"#;

    let host_call = || async {
        let report = connectors
            .call(
                &CallRequest {
                    user_id: "usr_bench",
                    declared: &declared,
                    integration: "bench",
                    method: "get_widget",
                    input,
                },
                &FixedKey,
            )
            .await;
        assert!(report.result.is_ok(), "{:?}", report.result.err());
    };
    let client = reqwest::Client::new();
    let url = format!("{base}/widgets/w-42?fields=all");
    let direct_call = || async {
        let value: Value = client
            .get(&url)
            .header("X-Api-Key", "bench-key")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(value["name"], "gear");
    };

    let mut figures = serde_json::Map::new();
    let mut medians = Vec::new();
    for name in ["direct reqwest", "host call"] {
        for _ in 0..WARM_UP {
            if name == "host call" {
                host_call().await
            } else {
                direct_call().await
            }
        }
        let mut times = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let started = Instant::now();
            if name == "host call" {
                host_call().await
            } else {
                direct_call().await
            }
            times.push(started.elapsed());
        }
        times.sort();
        let (p50, p99) = (support::pct(&times, 50), support::pct(&times, 99));
        println!(
            "{name:>15}: p50 {:>7.1} µs   p99 {:>7.1} µs   ({CALLS} calls)",
            micros(p50),
            micros(p99)
        );
        medians.push(p50);
        figures.insert(
            name.into(),
            json!({ "p50_us": micros(p50), "p99_us": micros(p99), "calls": CALLS }),
        );
    }
    let overhead = medians[1].saturating_sub(medians[0]);
    println!(
        "host-call overhead at the median: {:.1} µs",
        micros(overhead)
    );
    figures.insert("overhead_p50_us".into(), json!(micros(overhead)));
    support::write_report("host_calls", &Value::Object(figures));
}
