//! `#[on_event(…, debounce(key, period_ms))]`: a burst of events for one
//! key becomes one run, with the last payload, once the burst has been
//! quiet for the period; other keys run apart. Driven by the `cart-settle`
//! example (debounced by `customer`, 1 s).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, TestApp};

/// Posts `count` `cart.updated` events for `customer` (n = 1..=count),
/// spread over `nodes`; the run ids they answered with.
async fn burst(
    app: &TestApp,
    nodes: &[String],
    token: &str,
    customer: &str,
    count: usize,
) -> Vec<Value> {
    let mut run_ids = Vec::new();
    for n in 1..=count {
        let response = app
            .client
            .post(format!("{}/v1/events/cart.updated", nodes[n % nodes.len()]))
            .bearer_auth(token)
            .json(&json!({ "payload": { "customer": customer, "n": n } }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        run_ids.extend(body["run_ids"].as_array().unwrap().iter().cloned());
    }
    run_ids
}

/// The user's runs once `count` have ended and none is pending.
async fn settled(app: &TestApp, token: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = app.get(token, "/v1/runs?limit=200").await;
        let runs = body["runs"].as_array().unwrap().clone();
        let pending = runs
            .iter()
            .any(|r| matches!(r["status"].as_str(), Some("queued" | "running")));
        if runs.len() >= count && !pending {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            let (_, again) = app.get(token, "/v1/runs?limit=200").await;
            let again = again["runs"].as_array().unwrap().clone();
            assert_eq!(again.len(), count, "{again:#?}");
            return again;
        }
        assert!(std::time::Instant::now() < deadline, "{runs:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn run_of<'a>(runs: &'a [Value], customer: &str) -> &'a Value {
    let mine: Vec<&Value> = runs
        .iter()
        .filter(|r| r["payload"]["customer"] == customer)
        .collect();
    assert_eq!(mine.len(), 1, "one run for {customer}: {runs:#?}");
    mine[0]
}

on_both_stores!(a_burst_of_events_for_one_key_becomes_one_run_with_the_last_payload);

async fn a_burst_of_events_for_one_key_becomes_one_run_with_the_last_payload(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    app.deploy_example(&ada, "cart", "cart-settle").await;
    let nodes = [app.base.clone()];
    let c1 = burst(&app, &nodes, &ada, "c1", 100).await;
    let c2 = burst(&app, &nodes, &ada, "c2", 3).await;
    let runs = settled(&app, &ada, 2).await;
    for (customer, last, ids) in [("c1", 100, &c1), ("c2", 3, &c2)] {
        let run = run_of(&runs, customer);
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["payload"]["n"], last, "the last payload: {run}");
        assert!(
            ids.iter().all(|id| *id == run["id"]),
            "every event of {customer} named its one run: {ids:?}"
        );
        // It started after the burst had been quiet for the period.
        let (started, due) = (run["started_at"].as_i64(), run["not_before"].as_i64());
        assert!(started.unwrap() >= due.unwrap(), "{run}");
    }
    let (_, logs) = app
        .get(
            &ada,
            &format!(
                "/v1/runs/{}/logs",
                run_of(&runs, "c1")["id"].as_str().unwrap()
            ),
        )
        .await;
    assert!(logs.to_string().contains("settled with cart 100"), "{logs}");
}

on_both_stores!(debounce_is_declared_on_event_handlers_with_a_sane_period);

async fn debounce_is_declared_on_event_handlers_with_a_sane_period(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let declared = |trigger: Value, flow: Value| {
        json!({
            "name": "declared",
            "component": support::b64(&support::bare_module()),
            "metadata": {
                "integrations": [],
                "triggers": [{ "name": "h", "trigger": trigger, "flow": flow }],
            },
        })
    };
    let event = json!({ "kind": "event", "name": "cart.updated" });
    for (trigger, flow) in [
        (
            json!({ "kind": "manual" }),
            json!({ "debounce": { "key": "a", "period_ms": 10 } }),
        ),
        (
            event.clone(),
            json!({ "debounce": { "key": "a", "period_ms": 0 } }),
        ),
        (
            event.clone(),
            json!({ "debounce": { "key": "a", "period_ms": 86_400_001u64 } }),
        ),
        (
            event.clone(),
            json!({ "debounce": { "key": "a b", "period_ms": 10 } }),
        ),
    ] {
        let (status, body) = app.deploy_with(&ada, declared(trigger, flow.clone())).await;
        assert_eq!(status, 400, "{flow}: {body}");
        assert_eq!(body["error"]["code"], "invalid_flow", "{body}");
    }
    let (status, body) = app
        .deploy_with(
            &ada,
            declared(
                event,
                json!({ "debounce": { "key": "customer.id", "period_ms": 10 } }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Three nodes on one PostgreSQL database: a burst posted round the three
/// still becomes one run.
#[tokio::test]
async fn a_burst_across_three_nodes_becomes_one_run() {
    let Some((app, nodes)) = support::three_postgres_nodes().await else {
        return;
    };
    let ada = app.user("ada").await;
    app.deploy_example(&ada, "cart", "cart-settle").await;
    let ids = burst(&app, &nodes, &ada, "c1", 30).await;
    let runs = settled(&app, &ada, 1).await;
    assert_eq!(runs[0]["payload"]["n"], 30, "{}", runs[0]);
    assert!(ids.iter().all(|id| *id == runs[0]["id"]), "{ids:?}");
}

on_both_stores!(a_reaped_debounced_run_comes_back_beside_a_newer_one);

/// A debounced run whose worker died goes back to the queue even when a
/// newer run of its key waits already (it comes back without the key).
async fn a_reaped_debounced_run_comes_back_beside_a_newer_one(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.runner.workers = 0).await;
    let ada = app.user("ada").await;
    app.deploy_example(&ada, "cart", "cart-settle").await;
    let nodes = [app.base.clone()];
    let first = burst(&app, &nodes, &ada, "c1", 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let claimed = app
        .store
        .claim_run("w-dead", 10, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(json!(claimed.id), first[0]);
    let second = burst(&app, &nodes, &ada, "c1", 1).await;
    assert_ne!(first, second, "a running run takes no more events");
    let requeued = app.store.requeue_stale_runs(i64::MAX, true).await.unwrap();
    assert_eq!(requeued, 1);
    let (_, runs) = app.get(&ada, "/v1/runs?limit=10").await;
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "queued"), "{runs:?}");
}
