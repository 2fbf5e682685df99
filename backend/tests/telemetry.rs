//! Traces over OTLP, checked against a real receiver: an OTLP/HTTP
//! collector made here that decodes what roost sends with the OTLP protobuf
//! types. A run's spans, from its trigger through the worker and the
//! sandbox to its host calls, share one trace derived from the run id, and
//! nothing is sent without an endpoint. `/metrics` keeps its names.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::process::{Server, api};
use support::{Backend, TestApp};

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP receiver of traces on a random port, on a thread and
/// runtime of its own (it outlives each test's runtime).
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    requests: Arc<AtomicUsize>,
    url: String,
}

impl Collector {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let collector = Collector {
            url: format!("http://{}", listener.local_addr().unwrap()),
            ..Collector::default()
        };
        let state = collector.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new()
                    .route("/v1/traces", axum::routing::post(receive))
                    .with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        collector
    }

    /// The spans naming run `run_id`, once those named `names` are all in
    /// (the exporter sends in batches, every few seconds).
    async fn spans_of(&self, run_id: &str, names: &[&str]) -> Vec<Span> {
        for _ in 0..150 {
            let spans: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.attributes.get("roost.run_id").map(String::as_str) == Some(run_id))
                .cloned()
                .collect();
            if names.iter().all(|n| spans.iter().any(|s| s.name == *n)) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seen: Vec<String> = self
            .spans
            .lock()
            .unwrap()
            .iter()
            .map(|s| format!("{} {:?}", s.name, s.attributes))
            .collect();
        panic!("the spans {names:?} of run {run_id} never came; got {seen:#?}");
    }
}

async fn receive(State(collector): State<Collector>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    collector.requests.fetch_add(1, Ordering::SeqCst);
    let mut spans = collector.spans.lock().unwrap();
    for scope in request.resource_spans.iter().flat_map(|r| &r.scope_spans) {
        for span in &scope.spans {
            let attributes = span
                .attributes
                .iter()
                .map(|kv| {
                    let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(AnyValue::StringValue(s)) => s.clone(),
                        Some(AnyValue::IntValue(i)) => i.to_string(),
                        Some(AnyValue::BoolValue(b)) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    (kv.key.clone(), value)
                })
                .collect();
            spans.push(Span {
                name: span.name.clone(),
                trace_id: span.trace_id.clone(),
                span_id: span.span_id.clone(),
                parent_span_id: span.parent_span_id.clone(),
                attributes,
            });
        }
    }
    ""
}

/// The collector the in-process servers of this file share: the trace
/// layer is process-wide, so one endpoint serves them all.
fn shared() -> &'static Collector {
    static SHARED: OnceLock<Collector> = OnceLock::new();
    SHARED.get_or_init(Collector::start)
}

/// Checks run `run_id`'s trace: its spans are those of `names` (and maybe
/// more), all in the trace derived from the run id; the trigger's and the
/// worker's are children of the run's virtual parent, the sandbox's and the
/// host calls' children of the worker's. Returns the spans.
fn one_trace(spans: &[Span], run_id: &str, trigger: &str, secret: &str) -> Vec<Span> {
    let digest = Sha256::digest(run_id.as_bytes());
    let (trace_id, root) = (&digest[..16], &digest[16..24]);
    for span in spans {
        assert_eq!(span.trace_id, trace_id, "{span:?} is in another trace");
        for value in span.attributes.values() {
            assert!(!value.contains(secret), "{span:?} carries a token");
        }
    }
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let triggers = named("roost.trigger");
    assert_eq!(triggers.len(), 1, "{spans:#?}");
    assert_eq!(triggers[0].attributes["roost.trigger"], trigger);
    assert_eq!(triggers[0].parent_span_id, root);
    let executes = named("roost.execute");
    assert_eq!(executes.len(), 1, "{spans:#?}");
    let execute = executes[0];
    assert_eq!(execute.parent_span_id, root);
    assert_eq!(execute.attributes["roost.status"], "succeeded");
    assert_eq!(execute.attributes["roost.trigger"], trigger);
    for child in named("roost.sandbox")
        .into_iter()
        .chain(named("roost.host_call"))
    {
        assert_eq!(child.parent_span_id, execute.span_id, "{child:?}");
    }
    spans.to_vec()
}

async fn a_manual_and_an_event_run_are_each_one_trace(backend: Backend) {
    roost::logging::init("warn");
    let collector = shared();
    let app = TestApp::spawn_with(backend, |config| {
        config.otlp_endpoint = Some(collector.url.clone());
        config.operator_token = Some("the-operators-token".into());
    })
    .await;
    let token = app.user("ada").await;
    let probe = app.deploy_example(&token, "probe", "state-probe").await;
    let (status, run) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{probe}/run?wait=true"),
            json!({ "payload": { "steps": [{ "get": "cursor" }] } }),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let names = [
        "roost.trigger",
        "roost.execute",
        "roost.sandbox",
        "roost.host_call",
    ];
    let spans = collector.spans_of(&run_id, &names).await;
    let spans = one_trace(&spans, &run_id, "manual", &token);
    let call = spans.iter().find(|s| s.name == "roost.host_call").unwrap();
    assert_eq!(call.attributes["roost.host.service"], "state/get");

    // An event's run: `ping` answers a `pong` by emitting an event, a host call.
    app.deploy_example(&token, "ping", "ping").await;
    let (status, accepted) = app
        .send(
            Method::POST,
            &token,
            "/v1/events/pong",
            json!({ "id": "evt-1", "payload": { "n": 1, "stop_at": 1 } }),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let event_run = accepted["run_ids"][0].as_str().unwrap().to_string();
    let spans = collector.spans_of(&event_run, &names).await;
    let spans = one_trace(&spans, &event_run, "event", &token);
    let call = spans.iter().find(|s| s.name == "roost.host_call").unwrap();
    assert_eq!(call.attributes["roost.host.service"], "events/emit");

    // The metrics keep their names and types alongside.
    let (status, metrics) = app.get_text("the-operators-token", "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "# TYPE roost_runs gauge",
        "roost_runs{status=\"succeeded\"} ",
        "# TYPE roost_queue_depth gauge",
        "# TYPE roost_node_running_runs gauge",
        "# TYPE roost_events_ingested counter",
        "# TYPE roost_run_duration_seconds histogram",
        "# TYPE roost_trigger_lag_seconds histogram",
    ] {
        assert!(metrics.contains(line), "{line} missing: {metrics}");
    }
    assert!(
        metrics.contains("roost_events_ingested_total{node=") && metrics.contains(",le=\"0.001\"}"),
        "{metrics}"
    );
}

on_both_stores!(a_manual_and_an_event_run_are_each_one_trace);

/// Deploys `state-probe` to a `roost serve` child and runs it once.
async fn one_run_on(server: &Server, data_dir: &std::path::Path) -> String {
    let output = support::process::roost(data_dir, &["user", "create", "ada"], &[]);
    let token = support::process::text(&output.stdout).trim().to_string();
    assert!(output.status.success(), "{output:?}");
    let deployed = api(
        Method::POST,
        &format!("{}/v1/scripts/deploy", server.url),
        &token,
        json!({ "name": "probe", "component": support::b64(&roost_tests::example("state-probe")) }),
    )
    .await;
    let script = deployed["script_id"].as_str().expect("a script id");
    let run: Value = api(
        Method::POST,
        &format!("{}/v1/scripts/{script}/run?wait=true", server.url),
        &token,
        json!({ "payload": { "steps": [{ "get": "cursor" }] } }),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    run["run_id"].as_str().unwrap().to_string()
}

/// `roost serve --otlp-endpoint`: the flag turns traces on, and a stop
/// sends what is still buffered (the exporter's own period is 5 s).
#[tokio::test(flavor = "multi_thread")]
async fn the_flag_turns_traces_on_and_a_stop_flushes_them() {
    let collector = Collector::start();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &["--otlp-endpoint", &collector.url], &[]);
    let run_id = one_run_on(&server, data.path()).await;
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    let names = [
        "roost.trigger",
        "roost.execute",
        "roost.sandbox",
        "roost.host_call",
    ];
    let spans = collector.spans.lock().unwrap().clone();
    let spans: Vec<Span> = spans
        .into_iter()
        .filter(|s| s.attributes.get("roost.run_id") == Some(&run_id))
        .collect();
    for name in names {
        assert!(
            spans.iter().any(|s| s.name == name),
            "{name} missing: {spans:#?}"
        );
    }
}

/// Without an endpoint nothing is sent, even with the standard OTLP
/// variable pointing at a collector.
#[tokio::test(flavor = "multi_thread")]
async fn without_an_endpoint_nothing_is_sent() {
    let collector = Collector::start();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str())],
    );
    one_run_on(&server, data.path()).await;
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    assert_eq!(collector.requests.load(Ordering::SeqCst), 0);
    assert!(collector.spans.lock().unwrap().is_empty());
}
