//! Runs at a time: `run_at` or `delay` on a manual run, and
//! `roost_sdk::runs::schedule` from a script (committed with its run's
//! success). Each starts within 50 ms of its time and not before, can be
//! cancelled before it starts, and runs once on a cluster.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, TestApp};

/// Most a run at a time may start after its time.
const ON_TIME_MS: i64 = 50;

/// Run `id` once it has ended.
async fn ended(app: &TestApp, base: &str, token: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = app
            .client
            .get(format!("{base}/v1/runs/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        let run = body["run"].clone();
        if !matches!(run["status"].as_str(), Some("queued" | "running")) {
            return run;
        }
        assert!(std::time::Instant::now() < deadline, "never ended: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_on_time(run: &Value) {
    assert_eq!(run["status"], "succeeded", "{run}");
    let (due, started) = (
        run["not_before"].as_i64().unwrap(),
        run["started_at"].as_i64().unwrap(),
    );
    assert!(started >= due, "started {} ms early: {run}", due - started);
    assert!(
        started - due <= ON_TIME_MS,
        "started {} ms late: {run}",
        started - due
    );
}

on_both_stores!(a_run_at_a_time_starts_on_time_and_can_be_cancelled_before);

async fn a_run_at_a_time_starts_on_time_and_can_be_cancelled_before(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let hello = app.deploy_example(&ada, "hello", "hello").await;
    let run_path = format!("/v1/scripts/{hello}/run");

    // Three ways to say when, each on time.
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(900);
    let bodies = [
        json!({ "run_at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) }),
        json!({ "delay": "700ms" }),
        json!({ "delay": 0.8 }),
    ];
    let mut ids = Vec::new();
    for body in bodies {
        let (status, answer) = app
            .send(reqwest::Method::POST, &ada, &run_path, body.clone())
            .await;
        assert_eq!(status, 202, "{body}: {answer}");
        assert_eq!(answer["status"], "queued");
        assert!(answer["not_before"].is_i64(), "{answer}");
        ids.push(answer["run_id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        assert_on_time(&ended(&app, &app.base, &ada, id).await);
    }

    // Cancelled before its time, it never runs.
    let (_, answer) = app
        .send(
            reqwest::Method::POST,
            &ada,
            &run_path,
            json!({ "delay": "1s" }),
        )
        .await;
    let id = answer["run_id"].as_str().unwrap();
    let (status, body) = app
        .send(
            reqwest::Method::POST,
            &ada,
            &format!("/v1/runs/{id}/cancel"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let run = ended(&app, &app.base, &ada, id).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    assert!(run["started_at"].is_null(), "{run}");

    // Malformed times are refused, and queue nothing.
    let (_, before) = app.get(&ada, "/v1/runs?limit=200").await;
    for body in [
        json!({ "run_at": "tomorrow" }),
        json!({ "delay": "5 minutes" }),
        json!({ "delay": -1 }),
        json!({ "delay": "400d" }),
        json!({ "delay": "1s", "run_at": "2027-01-01T00:00:00Z" }),
    ] {
        let (status, answer) = app
            .send(reqwest::Method::POST, &ada, &run_path, body.clone())
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_run_at", "{answer}");
    }
    let (status, answer) = app
        .send(
            reqwest::Method::POST,
            &ada,
            &format!("{run_path}?wait=true"),
            json!({ "delay": "1s" }),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let (_, after) = app.get(&ada, "/v1/runs?limit=200").await;
    assert_eq!(
        before["runs"], after["runs"],
        "a refused request queued a run"
    );
}

on_both_stores!(a_script_schedules_a_run_with_its_success_only);

async fn a_script_schedules_a_run_with_its_success_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let ping = app.deploy_example(&ada, "ping", "ping").await;
    let run_path = format!("/v1/scripts/{ping}/run");
    let (_, answer) = app
        .send(
            reqwest::Method::POST,
            &ada,
            &run_path,
            json!({ "handler": "serve_later", "payload": { "in_ms": 800, "stop_at": 0 } }),
        )
        .await;
    let asker = answer["run_id"].as_str().unwrap().to_string();
    let asked = ended(&app, &app.base, &ada, &asker).await;
    assert_eq!(asked["status"], "succeeded", "{asked}");
    let (_, runs) = app.get(&ada, "/v1/runs?limit=200").await;
    let scheduled: Vec<&Value> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger_spec"] == format!("scheduled by {asker}"))
        .collect();
    assert_eq!(scheduled.len(), 1, "{runs}");
    let scheduled = scheduled[0];
    assert_eq!(scheduled["handler"], "start");
    assert_eq!(scheduled["chain_depth"], 1);
    assert_eq!(scheduled["payload"]["in_ms"], 800);
    let id = scheduled["id"].as_str().unwrap();
    // The dashboard's run page says when it may start.
    let session = support::dashboard::Session::sign_in(&app, &ada).await;
    let page = session.get(&format!("/runs/{id}")).await;
    assert!(page.body.contains("<dt>Not before</dt>"), "{}", page.body);
    assert_on_time(&ended(&app, &app.base, &ada, id).await);

    // A run that fails after asking asks for nothing.
    let (_, answer) = app
        .send(
            reqwest::Method::POST,
            &ada,
            &run_path,
            json!({ "handler": "serve_later", "payload": { "in_ms": 100, "fail": true } }),
        )
        .await;
    let failed = answer["run_id"].as_str().unwrap().to_string();
    let run = ended(&app, &app.base, &ada, &failed).await;
    assert_ne!(run["status"], "succeeded", "{run}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, runs) = app.get(&ada, "/v1/runs?limit=200").await;
    let asked: Vec<&Value> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["trigger_spec"].as_str().is_some_and(|spec| {
                spec.starts_with("scheduled by run_") && *spec != format!("scheduled by {asker}")
            })
        })
        .collect();
    assert!(
        asked.is_empty(),
        "a failed run's schedule was kept: {asked:?}"
    );
}

/// Three nodes on one PostgreSQL database: runs due at one time each run
/// once, not before their time.
#[tokio::test]
async fn runs_at_a_time_run_once_on_three_nodes() {
    let Some((app, nodes)) = support::three_postgres_nodes().await else {
        return;
    };
    let ada = app.user("ada").await;
    let hello = app.deploy_example(&ada, "hello", "hello").await;
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut ids = Vec::new();
    for n in 0..6 {
        let response = app
            .client
            .post(format!("{}/v1/scripts/{hello}/run", nodes[n % 3]))
            .bearer_auth(&ada)
            .json(&json!({ "run_at": at, "payload": { "n": n } }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        ids.push(body["run_id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let run = ended(&app, &app.base, &ada, id).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["attempt"], 1, "{run}");
        assert!(
            run["started_at"].as_i64() >= run["not_before"].as_i64(),
            "{run}"
        );
    }
    let (_, runs) = app.get(&ada, "/v1/runs?limit=200").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 6, "{runs}");
}
