//! `#[on_event(…, concurrency(key, limit))]`: at most `limit` runs per key
//! value run at once, the others wait in the order they were queued, and
//! other keys run beside them. Driven by the `ledger-sync` example (one
//! `order.sync` per customer at a time; two `report.export`s in all).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, TestApp};

/// Posts one event of `kind` per payload, round `nodes`.
async fn post(app: &TestApp, nodes: &[String], token: &str, kind: &str, payloads: &[Value]) {
    for (i, payload) in payloads.iter().enumerate() {
        let response = app
            .client
            .post(format!("{}/v1/events/{kind}", nodes[i % nodes.len()]))
            .bearer_auth(token)
            .json(&json!({ "payload": payload }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    }
}

/// The user's runs once `count` have ended.
async fn ended(app: &TestApp, token: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = app.get(token, "/v1/runs?limit=200").await;
        let runs = body["runs"].as_array().unwrap().clone();
        let pending = runs
            .iter()
            .any(|r| matches!(r["status"].as_str(), Some("queued" | "running")));
        if runs.len() >= count && !pending {
            assert_eq!(runs.len(), count, "{runs:#?}");
            assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
            return runs;
        }
        assert!(std::time::Instant::now() < deadline, "{runs:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `runs` whose payload has `customer`, in the order they were posted.
fn of(runs: &[Value], customer: &str) -> Vec<Value> {
    let mut mine: Vec<Value> = runs
        .iter()
        .filter(|r| r["payload"]["customer"] == customer)
        .cloned()
        .collect();
    mine.sort_by_key(|r| r["payload"]["n"].as_i64());
    mine
}

fn span(run: &Value) -> (i64, i64) {
    (
        run["started_at"].as_i64().unwrap(),
        run["finished_at"].as_i64().unwrap(),
    )
}

/// The most runs of `runs` running at one instant.
fn most_at_once(runs: &[Value]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for run in runs {
        let (start, end) = span(run);
        edges.push((start, 1));
        edges.push((end, -1));
    }
    // An end and a start at one millisecond: the end first.
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

/// Each run starts once the one before it has ended: one at a time, in
/// the order they were queued.
fn assert_one_at_a_time(runs: &[Value]) {
    for pair in runs.windows(2) {
        assert!(
            span(&pair[1]).0 >= span(&pair[0]).1,
            "a run of the key started before the one ahead of it ended: {runs:#?}"
        );
    }
}

fn orders(customer: &str, count: usize) -> Vec<Value> {
    (1..=count)
        .map(|n| json!({ "customer": customer, "n": n, "ms": 250 }))
        .collect()
}

/// Enough workers for every run at once: only the limits hold runs back.
async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.runner.workers = 8;
        config.runner.per_user_workers = Some(8);
        config.runner.per_script_concurrency = 8;
    })
    .await
}

on_both_stores!(one_key_runs_one_at_a_time_while_others_run_beside_it);

async fn one_key_runs_one_at_a_time_while_others_run_beside_it(backend: Backend) {
    let app = spawn(backend).await;
    let ada = app.user("ada").await;
    app.deploy_example(&ada, "ledger", "ledger-sync").await;
    let nodes = [app.base.clone()];
    let mut payloads = Vec::new();
    for (a, b) in orders("c1", 4).into_iter().zip(orders("c2", 4)) {
        payloads.extend([a, b]);
    }
    post(&app, &nodes, &ada, "order.sync", &payloads).await;
    let runs = ended(&app, &ada, 8).await;
    let (c1, c2) = (of(&runs, "c1"), of(&runs, "c2"));
    assert_one_at_a_time(&c1);
    assert_one_at_a_time(&c2);
    assert_eq!(
        most_at_once(&runs),
        2,
        "the two customers in parallel: {runs:#?}"
    );
    // The record says which runs waited for their key.
    for run in c1.iter().chain(&c2) {
        let expected = if run["payload"]["n"] == 1 {
            Value::Null
        } else {
            json!("concurrency")
        };
        assert_eq!(run["wait_reason"], expected, "{run}");
    }
    let session = support::dashboard::Session::sign_in(&app, &ada).await;
    let page = session
        .get(&format!("/runs/{}", c1[3]["id"].as_str().unwrap()))
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("waited for earlier runs of its key"),
        "{}",
        page.body
    );
}

on_both_stores!(a_limit_of_two_lets_two_run_at_once);

async fn a_limit_of_two_lets_two_run_at_once(backend: Backend) {
    let app = spawn(backend).await;
    let ada = app.user("ada").await;
    app.deploy_example(&ada, "ledger", "ledger-sync").await;
    let exports: Vec<Value> = (1..=6).map(|n| json!({ "n": n, "ms": 250 })).collect();
    let nodes = [app.base.clone()];
    post(&app, &nodes, &ada, "report.export", &exports).await;
    let runs = ended(&app, &ada, 6).await;
    assert_eq!(most_at_once(&runs), 2, "{runs:#?}");
}

on_both_stores!(a_concurrency_limit_is_declared_with_a_sane_limit);

async fn a_concurrency_limit_is_declared_with_a_sane_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let declared = |kind: &str, flow: Value| {
        json!({
            "name": "declared",
            "component": support::b64(&support::bare_module()),
            "metadata": {
                "integrations": [],
                "triggers": [{ "name": "h", "trigger": { "kind": kind, "name": "x" }, "flow": flow }],
            },
        })
    };
    let limited = json!({ "key": "customer.id", "limit": 1 });
    for (kind, flow, status, code) in [
        (
            "event",
            json!({ "concurrency": { "key": "a", "limit": 0 } }),
            400,
            "invalid_flow",
        ),
        (
            "event",
            json!({ "concurrency": { "key": "a", "limit": 10_001 } }),
            400,
            "invalid_flow",
        ),
        (
            "event",
            json!({ "concurrency": { "key": "a b", "limit": 1 } }),
            400,
            "invalid_flow",
        ),
        (
            "manual",
            json!({ "concurrency": limited }),
            400,
            "invalid_flow",
        ),
        (
            "event",
            json!({ "concurrency": { "key": "a" } }),
            422,
            "invalid_body",
        ),
    ] {
        let (got, body) = app.deploy_with(&ada, declared(kind, flow.clone())).await;
        assert_eq!(got, status, "{flow}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    // With a throttle or a debounce beside it.
    let throttle = json!({ "key": "tenant", "limit": 2, "period_ms": 1000 });
    let (status, body) = app
        .deploy_with(
            &ada,
            declared(
                "event",
                json!({ "concurrency": limited, "throttle": throttle }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Three nodes on one PostgreSQL database: a key's runs, queued at any
/// node and claimed by any, still run one at a time.
#[tokio::test]
async fn three_nodes_keep_one_run_of_a_key_at_a_time() {
    let Some((app, nodes)) = support::three_postgres_nodes().await else {
        return;
    };
    let ada = app.user("ada").await;
    app.deploy_example(&ada, "ledger", "ledger-sync").await;
    let mut payloads = orders("c1", 6);
    payloads.extend(orders("c2", 2));
    post(&app, &nodes, &ada, "order.sync", &payloads).await;
    let runs = ended(&app, &ada, 8).await;
    assert_one_at_a_time(&of(&runs, "c1"));
    assert_one_at_a_time(&of(&runs, "c2"));
    assert_eq!(most_at_once(&runs), 2, "{runs:#?}");
}
