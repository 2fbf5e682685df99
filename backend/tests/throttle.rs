//! `#[on_event(…, throttle(key, limit, period_ms[, drop]))]`: at most
//! `limit` runs per key start in any period; the others wait their turn,
//! or are dropped when told to. Driven by the `rate-limited` example (two
//! calls a second per tenant).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, TestApp};

/// Posts `count` events of `kind` for `tenant` (n = 1..=count) round
/// `nodes`; the run ids each answered with.
async fn post(
    app: &TestApp,
    nodes: &[String],
    token: &str,
    kind: &str,
    tenant: &str,
    count: usize,
) -> Vec<Vec<Value>> {
    let mut answers = Vec::new();
    for n in 1..=count {
        let response = app
            .client
            .post(format!("{}/v1/events/{kind}", nodes[n % nodes.len()]))
            .bearer_auth(token)
            .json(&json!({ "payload": { "tenant": tenant, "n": n } }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        answers.push(body["run_ids"].as_array().unwrap().clone());
    }
    answers
}

/// `tenant`'s runs once `count` of the user's have ended, by their time.
async fn runs_of(app: &TestApp, token: &str, count: usize, tenant: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = app.get(token, "/v1/runs?limit=200").await;
        let runs = body["runs"].as_array().unwrap().clone();
        let ended = runs
            .iter()
            .all(|r| !matches!(r["status"].as_str(), Some("queued" | "running")));
        if runs.len() >= count && ended {
            let mut mine: Vec<Value> = runs
                .into_iter()
                .filter(|r| r["payload"]["tenant"] == tenant)
                .collect();
            mine.sort_by_key(|r| r["not_before"].as_i64());
            return mine;
        }
        assert!(std::time::Instant::now() < deadline, "{runs:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each run two places later starts a whole period later, none early.
fn assert_spaced(runs: &[Value]) {
    for run in runs {
        assert_eq!(run["status"], "succeeded", "{run}");
        assert!(
            run["started_at"].as_i64().unwrap() >= run["not_before"].as_i64().unwrap(),
            "{run}"
        );
    }
    for pair in runs.windows(3) {
        let (first, third) = (
            pair[0]["not_before"].as_i64().unwrap(),
            pair[2]["not_before"].as_i64().unwrap(),
        );
        assert!(
            third - first >= 1000,
            "two runs a second at most: {runs:#?}"
        );
    }
}

on_both_stores!(a_throttled_key_starts_at_most_its_limit_per_period);

async fn a_throttled_key_starts_at_most_its_limit_per_period(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    app.deploy_example(&ada, "api", "rate-limited").await;
    let nodes = [app.base.clone()];
    post(&app, &nodes, &ada, "api.call", "t1", 6).await;
    post(&app, &nodes, &ada, "api.call", "t2", 2).await;
    let t1 = runs_of(&app, &ada, 8, "t1").await;
    assert_eq!(t1.len(), 6, "none dropped: {t1:#?}");
    assert_spaced(&t1);
    let last = t1[5]["not_before"].as_i64().unwrap() - t1[0]["not_before"].as_i64().unwrap();
    assert!(
        (2000..2500).contains(&last),
        "six calls over two periods: {last} ms"
    );
    // Another tenant is not held back by the first.
    let t2 = runs_of(&app, &ada, 8, "t2").await;
    for run in &t2 {
        let waited = run["not_before"].as_i64().unwrap() - run["queued_at"].as_i64().unwrap();
        assert!(waited < 200, "{run}");
    }

    // Told to drop, the calls past the rate queue nothing.
    let answers = post(&app, &nodes, &ada, "api.ping", "t3", 5).await;
    let queued: Vec<usize> = answers.iter().map(Vec::len).collect();
    assert_eq!(queued, [1, 1, 0, 0, 0], "{answers:?}");
    let t3 = runs_of(&app, &ada, 10, "t3").await;
    assert_eq!(t3.len(), 2, "{t3:#?}");
}

on_both_stores!(flow_control_is_one_kind_with_a_sane_limit);

async fn flow_control_is_one_kind_with_a_sane_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let declared = |flow: Value| {
        json!({
            "name": "declared",
            "component": support::b64(&support::bare_module()),
            "metadata": {
                "integrations": [],
                "triggers": [{ "name": "h", "trigger": { "kind": "event", "name": "x" }, "flow": flow }],
            },
        })
    };
    let throttle = json!({ "key": "a", "limit": 2, "period_ms": 10 });
    let debounce = json!({ "key": "a", "period_ms": 10 });
    for flow in [
        json!({ "throttle": { "key": "a", "limit": 0, "period_ms": 10 } }),
        json!({ "throttle": { "key": "a", "limit": 2, "period_ms": 0 } }),
        json!({ "throttle": throttle, "debounce": debounce }),
        json!({}),
    ] {
        let (status, body) = app.deploy_with(&ada, declared(flow.clone())).await;
        assert_eq!(status, 400, "{flow}: {body}");
        assert_eq!(body["error"]["code"], "invalid_flow", "{body}");
    }
    let (status, body) = app
        .deploy_with(&ada, declared(json!({ "throttle": throttle })))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Three nodes on one PostgreSQL database: calls queued at any node take
/// their turns in one line.
#[tokio::test]
async fn a_throttle_holds_across_three_nodes() {
    let Some((app, nodes)) = support::three_postgres_nodes().await else {
        return;
    };
    let ada = app.user("ada").await;
    app.deploy_example(&ada, "api", "rate-limited").await;
    post(&app, &nodes, &ada, "api.call", "t1", 6).await;
    let t1 = runs_of(&app, &ada, 6, "t1").await;
    assert_eq!(t1.len(), 6);
    assert_spaced(&t1);
}
