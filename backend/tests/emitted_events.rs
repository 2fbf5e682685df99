//! Events scripts emit (`roost_sdk::events::emit`): committed with the
//! emitting run's success, once, starting the subscribers' runs like any
//! event; chains are followed both ways and stopped at their limit. Driven
//! by the `ping` and `pong` examples, which rally events between them, and
//! `scorekeeper`, which counts each rally's end in its state.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::process::{Server, api, roost, text};
use support::{Backend, TestApp};

/// The user's runs once `count` of them have ended and none is pending,
/// by chain depth (runs queued in one millisecond list in any order); a
/// further run turning up soon after fails the test.
async fn settled_runs(base: &str, token: &str, count: usize) -> Vec<Value> {
    let list = || async {
        let url = format!("{base}/v1/runs?limit=200");
        let body = api(reqwest::Method::GET, &url, token, Value::Null).await;
        let mut runs = body["runs"].as_array().unwrap().clone();
        runs.sort_by_key(|r| (r["chain_depth"].as_i64(), r["queued_at"].as_i64()));
        runs
    };
    let ended = |runs: &[Value]| {
        runs.iter()
            .all(|r| !matches!(r["status"].as_str(), Some("queued" | "running")))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut runs = list().await;
    while !(runs.len() >= count && ended(&runs)) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} runs, not {count} ended: {runs:#?}",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        runs = list().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = list().await;
    assert_eq!(
        again.len(),
        count,
        "more runs than the chain has: {again:#?}"
    );
    again
}

async fn event(base: &str, token: &str, id: &str) -> Value {
    api(
        reqwest::Method::GET,
        &format!("{base}/v1/events/{id}"),
        token,
        Value::Null,
    )
    .await
}

/// Deploys `ping`, `pong` and `scorekeeper` for `token`; the ids of
/// `ping` and `scorekeeper`.
async fn rally(app: &TestApp, token: &str) -> (String, String) {
    let ping = app.deploy_example(token, "ping", "ping").await;
    app.deploy_example(token, "pong", "pong").await;
    let scorekeeper = app
        .deploy_example(token, "scorekeeper", "scorekeeper")
        .await;
    (ping, scorekeeper)
}

/// How many rallies `scorekeeper` (script `id`) has counted.
async fn rallies(base: &str, token: &str, id: &str) -> Value {
    let url = format!("{base}/v1/scripts/{id}/state/rallies");
    api(reqwest::Method::GET, &url, token, Value::Null).await["entry"]["value"].clone()
}

on_both_stores!(a_chain_runs_once_per_link_and_says_what_caused_what);

async fn a_chain_runs_once_per_link_and_says_what_caused_what(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let (ping, scorekeeper) = rally(&app, &ada).await;
    let (status, body) = app
        .send(
            reqwest::Method::POST,
            &ada,
            &format!("/v1/scripts/{ping}/run"),
            json!({ "handler": "start", "payload": { "stop_at": 3 } }),
        )
        .await;
    assert_eq!(status, 202, "{body}");

    // start → ping 1 (pong) → pong 2 (ping) → ping 3 (pong, the last) →
    // rally.over (scorekeeper): three scripts.
    let runs = settled_runs(&app.base, &ada, 5).await;
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    let start = &runs[0];
    assert_eq!(start["trigger_kind"], "manual");
    assert_eq!(start["chain_depth"], 0);
    assert!(start["cause_event_id"].is_null());
    let handlers: Vec<&str> = runs[1..]
        .iter()
        .map(|r| r["trigger_spec"].as_str().unwrap())
        .collect();
    assert_eq!(handlers, ["ping", "pong", "ping", "rally.over"]);
    assert_eq!(runs[4]["script_id"], json!(scorekeeper));
    assert_eq!(runs[4]["payload"], json!({ "hits": 3 }));
    assert_eq!(rallies(&app.base, &ada, &scorekeeper).await, 1);
    for (depth, pair) in runs.windows(2).enumerate() {
        let (cause, run) = (&pair[0], &pair[1]);
        assert_eq!(run["trigger_kind"], "event");
        assert_eq!(run["chain_depth"], depth as i64 + 1, "{run}");
        let id = run["cause_event_id"].as_str().unwrap();
        assert_eq!(id, format!("{}.e1", cause["id"].as_str().unwrap()));
        let event = event(&app.base, &ada, id).await;
        assert_eq!(event["source_run_id"], cause["id"], "{event}");
        assert_eq!(event["chain_depth"], depth as i64 + 1);
        assert_eq!(event["run_ids"], json!([run["id"]]));
        assert!(event["stopped"].is_null());
        assert_eq!(
            event["source"],
            format!("roost:script/{}", cause["script_id"].as_str().unwrap())
        );
        if run["trigger_spec"] != "rally.over" {
            assert_eq!(run["payload"]["n"], depth as i64 + 1);
        }
    }
    // The dashboard's run page names the event that started a run.
    let session = support::dashboard::Session::sign_in(&app, &ada).await;
    let last = runs.last().unwrap();
    let page = session
        .get(&format!("/runs/{}", last["id"].as_str().unwrap()))
        .await;
    let cause = last["cause_event_id"].as_str().unwrap();
    assert!(
        page.body
            .contains(&format!("event <code>{cause}</code> · link 4 of its chain")),
        "{}",
        page.body
    );
}

on_both_stores!(two_scripts_that_emit_each_others_events_stop_at_the_limit);

async fn two_scripts_that_emit_each_others_events_stop_at_the_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.abuse.max_event_chain = 5).await;
    let ada = app.user("ada").await;
    let (ping, _) = rally(&app, &ada).await;
    app.send(
        reqwest::Method::POST,
        &ada,
        &format!("/v1/scripts/{ping}/run"),
        json!({ "handler": "start", "payload": { "stop_at": 1000 } }),
    )
    .await;
    // start, then links of depth 1 to 5; the 6th event is stopped.
    let runs = settled_runs(&app.base, &ada, 6).await;
    let last = runs.last().unwrap();
    assert_eq!(last["chain_depth"], 5, "{last}");
    let stopped = event(
        &app.base,
        &ada,
        &format!("{}.e1", last["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(stopped["stopped"], "chain_limit", "{stopped}");
    assert_eq!(stopped["chain_depth"], 6);
    assert_eq!(stopped["run_ids"], json!([]));
    assert_eq!(stopped["source_run_id"], last["id"]);
}

on_both_stores!(a_run_that_fails_after_emitting_emits_nothing);

async fn a_run_that_fails_after_emitting_emits_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let (status, body) = app
        .deploy_with(
            &ada,
            json!({
                "name": "pong",
                "component": support::b64(&roost_tests::example("pong")),
                "retries": { "max": 0 },
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let ping = app.deploy_example(&ada, "ping", "ping").await;
    let (status, _) = app
        .send(
            reqwest::Method::POST,
            &ada,
            "/v1/events/ping",
            json!({ "payload": { "n": 1, "stop_at": 5, "fail_after_emit": true } }),
        )
        .await;
    assert_eq!(status, 202);
    let runs = settled_runs(&app.base, &ada, 1).await;
    assert_eq!(runs[0]["status"], "failed", "{}", runs[0]);
    let id = format!("{}.e1", runs[0]["id"].as_str().unwrap());
    let (status, _) = app.get(&ada, &format!("/v1/events/{id}")).await;
    assert_eq!(status, 404, "a failed run's event was committed");
    let (_, ping_runs) = app.get(&ada, &format!("/v1/runs?script_id={ping}")).await;
    assert_eq!(ping_runs["runs"], json!([]));
}

on_both_stores!(a_run_that_floods_events_is_stopped_and_emits_none);

/// A hostile script emitting past the per-run caps (100 events, 4 MiB of
/// payload) is refused by roost; its run fails, so none of them is kept.
async fn a_run_that_floods_events_is_stopped_and_emits_none(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let ping = app.deploy_example(&ada, "ping", "ping").await;
    for (payload, code) in [
        (json!({ "count": 101, "size": 10 }), "too_many_events"),
        (
            json!({ "count": 6, "size": 900_000 }),
            "payload_budget_spent",
        ),
    ] {
        let (status, body) = app
            .send(
                reqwest::Method::POST,
                &ada,
                &format!("/v1/scripts/{ping}/run?wait=true"),
                json!({ "handler": "flood", "payload": payload }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["run"]["status"], "failed", "{body}");
        assert!(body["stderr"].as_str().unwrap().contains(code), "{body}");
        let first = format!("{}.e1", body["run"]["id"].as_str().unwrap());
        let (status, _) = app.get(&ada, &format!("/v1/events/{first}")).await;
        assert_eq!(status, 404, "a failed run's events were kept");
    }
}

on_both_stores!(a_chain_killed_mid_link_runs_each_link_once);

/// SIGKILL while a link has emitted its event but not committed: after the
/// restart the link is run again, and the chain of three scripts goes on
/// with one event and one run per link, and one count at its end.
async fn a_chain_killed_mid_link_runs_each_link_once(backend: Backend) {
    let data = tempfile::tempdir().unwrap();
    let database = support::database_url(backend, data.path()).await;
    let env = [("ROOST_DATABASE_URL", database.as_str())];
    let flags = ["--workers", "1", "--run-stale-secs", "1"];
    let server = Server::start_with(data.path(), &flags, &env);
    let created = roost(data.path(), &["user", "create", "ada"], &env);
    let token = text(&created.stdout).trim().to_string();
    assert!(!token.is_empty(), "{}", text(&created.stderr));
    let mut ids = Vec::new();
    for name in ["ping", "pong", "scorekeeper"] {
        let component = std::fs::read(roost_tests::example_path(name)).unwrap();
        let deployed = api(
            reqwest::Method::POST,
            &format!("{}/v1/scripts/deploy", server.url),
            &token,
            json!({ "name": name, "component": support::b64(&component) }),
        )
        .await;
        ids.push(deployed["script_id"].as_str().unwrap().to_string());
    }
    api(
        reqwest::Method::POST,
        &format!("{}/v1/scripts/{}/run", server.url, ids[0]),
        &token,
        json!({ "handler": "start", "payload": { "stop_at": 3, "sleep_ms": 1500 } }),
    )
    .await;
    // Wait for the second link (depth 2) to be running: it emits at once,
    // then sleeps.
    let url = format!("{}/v1/runs?limit=50", server.url);
    let mut seen = Value::Null;
    let mut running = false;
    for _ in 0..400 {
        seen = api(reqwest::Method::GET, &url, &token, Value::Null).await;
        running = seen["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["chain_depth"] == 2 && r["status"] == "running");
        if running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(running, "the second link never ran: {seen:#}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill_hard();

    let server = Server::start_with(data.path(), &flags, &env);
    let runs = settled_runs(&server.url, &token, 5).await;
    assert!(
        runs.iter().all(|r| r["status"] == "succeeded"),
        "before the kill: {seen:#}; after: {runs:#?}"
    );
    let depths: Vec<i64> = runs
        .iter()
        .map(|r| r["chain_depth"].as_i64().unwrap())
        .collect();
    assert_eq!(depths, [0, 1, 2, 3, 4]);
    assert_eq!(rallies(&server.url, &token, &ids[2]).await, 1);
    for run in &runs[1..] {
        let id = run["cause_event_id"].as_str().unwrap();
        let event = event(&server.url, &token, id).await;
        assert_eq!(
            event["run_ids"],
            json!([run["id"]]),
            "one run per event: {event}"
        );
    }
    assert!(server.stop().success());
}

/// Three nodes on one PostgreSQL database: the chain's links are claimed
/// wherever, each once.
#[tokio::test]
async fn a_chain_on_three_nodes_runs_once_per_link() {
    let Some((app, _nodes)) = support::three_postgres_nodes().await else {
        return;
    };
    let ada = app.user("ada").await;
    let (ping, scorekeeper) = rally(&app, &ada).await;
    app.send(
        reqwest::Method::POST,
        &ada,
        &format!("/v1/scripts/{ping}/run"),
        json!({ "handler": "start", "payload": { "stop_at": 6 } }),
    )
    .await;
    let runs = settled_runs(&app.base, &ada, 8).await;
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    let depths: Vec<i64> = runs
        .iter()
        .map(|r| r["chain_depth"].as_i64().unwrap())
        .collect();
    assert_eq!(depths, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(rallies(&app.base, &ada, &scorekeeper).await, 1);
    for run in &runs[1..] {
        let event = event(&app.base, &ada, run["cause_event_id"].as_str().unwrap()).await;
        assert_eq!(event["run_ids"], json!([run["id"]]), "{event}");
    }
}
