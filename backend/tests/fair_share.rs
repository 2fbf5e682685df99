//! One tenant cannot starve the others: a user's long runs take at most a
//! share of a node's workers, requests waiting on runs (`?wait`) are capped
//! per user and answer when the run's end is announced, also across nodes.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{Backend, TestApp};

/// Starts a run of `script` that the request waits on, in the background.
fn wait_in_background(
    app: &TestApp,
    token: &str,
    script: &str,
    body: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let request = app
        .client
        .post(format!("{}/v1/scripts/{script}/run?wait=true", app.base))
        .bearer_auth(token)
        .json(&body);
    tokio::spawn(async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    })
}

/// The user's runs in `status`.
async fn runs_in(app: &TestApp, token: &str, status: &str) -> Vec<Value> {
    let (code, body) = app
        .get(token, &format!("/v1/runs?status={status}&limit=200"))
        .await;
    assert_eq!(code, 200, "{body}");
    body["runs"].as_array().unwrap().clone()
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ada holds many waiting runs of a sleeper, queued before Bob's `hello`.
/// Oldest-first claims gave Ada's runs both workers until they had all
/// run; with a share per user, one worker stays free of Ada's runs, and
/// Bob's run starts at once.
async fn a_users_long_runs_leave_workers_for_other_users(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.workers = 2;
        config.run_limits.timeout = Duration::from_secs(60);
    })
    .await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let sleeper = app.deploy_example(&ada, "sleeper", "sleeper").await;
    let hello = app.deploy_example(&bob, "hello", "hello").await;

    let ada_waits: Vec<_> = (0..6)
        .map(|_| wait_in_background(&app, &ada, &sleeper, json!({ "payload": { "ms": 1500 } })))
        .collect();
    until("Ada's runs are queued and one runs", async || {
        runs_in(&app, &ada, "queued").await.len() + runs_in(&app, &ada, "running").await.len() == 6
            && !runs_in(&app, &ada, "running").await.is_empty()
    })
    .await;

    let began = Instant::now();
    let (status, run) = app
        .send(
            Method::POST,
            &bob,
            &format!("/v1/scripts/{hello}/run?wait=true&timeout=30"),
            json!({}),
        )
        .await;
    let took = began.elapsed();
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(
        took < Duration::from_millis(1200),
        "Bob's run waited {took:?} behind Ada's"
    );
    // Ada never held both workers.
    assert!(runs_in(&app, &ada, "running").await.len() <= 1);

    // Ada's runs are not starved either: each runs, one after another.
    for wait in ada_waits {
        let (status, body) = wait.await.unwrap();
        assert!(status == 200 || status == 202, "{body}");
    }
    until("all of Ada's runs have ended", async || {
        runs_in(&app, &ada, "succeeded").await.len() == 6
    })
    .await;
}
on_both_stores!(a_users_long_runs_leave_workers_for_other_users);

/// A user keeps a bounded number of requests waiting on runs; one past it
/// is refused before its run is queued, while other users still wait.
#[tokio::test]
async fn waiting_requests_are_capped_per_user_and_a_refused_one_queues_nothing() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.runner.workers = 2;
        config.runner.per_user_workers = Some(2);
        config.runner.per_user_waits = 2;
        config.run_limits.timeout = Duration::from_secs(60);
    })
    .await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let sleeper = app.deploy_example(&ada, "sleeper", "sleeper").await;
    let hello = app.deploy_example(&bob, "hello", "hello").await;
    let sleep = json!({ "payload": { "ms": 1500 } });
    let first = wait_in_background(&app, &ada, &sleeper, sleep.clone());
    let second = wait_in_background(&app, &ada, &sleeper, sleep.clone());
    until("both of Ada's waiting runs are queued", async || {
        runs_in(&app, &ada, "running").await.len() + runs_in(&app, &ada, "queued").await.len() == 2
    })
    .await;

    let (status, body) = app
        .send(
            Method::POST,
            &ada,
            &format!("/v1/scripts/{sleeper}/run?wait=true"),
            sleep.clone(),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_waits", "{body}");
    let (_, all) = app.get(&ada, "/v1/runs?limit=200").await;
    assert_eq!(all["runs"].as_array().unwrap().len(), 2, "{all}");
    // Without `wait`, the run is taken.
    let (status, body) = app
        .send(
            Method::POST,
            &ada,
            &format!("/v1/scripts/{sleeper}/run"),
            json!({ "payload": { "ms": 10 } }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // Bob's waits are his own.
    let (status, run) = app
        .send(
            Method::POST,
            &bob,
            &format!("/v1/scripts/{hello}/run?wait=true"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{run}");

    // Once Ada's requests have answered, she may wait again.
    for wait in [first, second] {
        let (status, body) = wait.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = app
        .send(
            Method::POST,
            &ada,
            &format!("/v1/scripts/{sleeper}/run?wait=true"),
            json!({ "payload": { "ms": 10 } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// On PostgreSQL a request waiting at one node answers when another node
/// ends the run, on the end's notice rather than at its next look (once a
/// second): within a fraction of that, every time.
#[tokio::test]
async fn a_wait_at_one_node_answers_when_another_node_ends_the_run() {
    if support::postgres_base_url().is_none() {
        eprintln!("skipped: set ROOST_TEST_POSTGRES_URL to run it on PostgreSQL");
        return;
    }
    // This node only serves the API; the other one runs the runs.
    let app = TestApp::spawn_with(Backend::Postgres, |config| config.runner.workers = 0).await;
    let mut worker = app.config.clone();
    worker.runner.workers = 1;
    worker.listen = "127.0.0.1:0".parse().unwrap();
    let node = roost::app::Application::build(worker).await.unwrap();
    tokio::spawn(node.run_until(std::future::pending()));

    let ada = app.user("ada").await;
    let hello = app.deploy_example(&ada, "hello", "hello").await;
    for _ in 0..5 {
        let (status, body) = app
            .send(
                Method::POST,
                &ada,
                &format!("/v1/scripts/{hello}/run?wait=true&timeout=30"),
                json!({}),
            )
            .await;
        let answered = roost::store::now_millis();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "succeeded", "{body}");
        let ended = body["run"]["finished_at"].as_i64().unwrap();
        assert!(
            answered - ended < 250,
            "answered {} ms after the run ended",
            answered - ended
        );
    }
}

/// An event or a run's payload is kept with every run it starts: each has
/// a size limit, and a user's runs a total, past which nothing is stored.
async fn payloads_are_capped_in_size_and_in_total_per_user(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        // No workers: the runs stay as they were queued.
        config.runner.workers = 0;
        config.abuse.max_payload_bytes = 8 * 1024;
        config.abuse.max_stored_payload_bytes_per_user = 20 * 1024;
    })
    .await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let echo = app.deploy_example(&ada, "echo", "event-echo").await;
    let hello = app.deploy_example(&ada, "hello", "hello").await;
    app.deploy_example(&bob, "echo", "event-echo").await;
    let blob = |bytes: usize| "x".repeat(bytes);
    // Posts an order.created event carrying `bytes` of payload as `token`.
    let post = |token: &str, bytes: usize| {
        let body = json!({ "payload": { "blob": blob(bytes) } });
        let token = token.to_string();
        let app = &app;
        async move {
            app.send(Method::POST, &token, "/v1/events/order.created", body)
                .await
        }
    };
    // Starts `hello` with `bytes` of payload as Ada.
    let start = |bytes: usize| {
        let body = json!({ "payload": { "blob": blob(bytes) } });
        let (app, ada, hello) = (&app, &ada, &hello);
        async move {
            app.send(Method::POST, ada, &format!("/v1/scripts/{hello}/run"), body)
                .await
        }
    };

    // Larger than one payload may be.
    let (status, body) = post(&ada, 9 * 1024).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    let (status, body) = start(9 * 1024).await;
    assert_eq!(status, 413, "{body}");

    // Three payloads of 6 KiB fit in 20 KiB; a fourth does not, and is not stored.
    for _ in 0..3 {
        let (status, body) = post(&ada, 6 * 1024).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = post(&ada, 6 * 1024).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "payload_quota_full", "{body}");
    assert_eq!(body["error"]["details"]["limit_bytes"], 20 * 1024, "{body}");
    let (status, body) = start(6 * 1024).await;
    assert_eq!(status, 429, "{body}");
    let ada_id = app.user_id(&ada).await;
    let depth = app.store.queue_depth(&ada_id).await.unwrap();
    assert_eq!(depth.runs, 3);
    assert!(
        depth.payload_bytes > 18 * 1024 && depth.payload_bytes <= 20 * 1024,
        "{depth:?}"
    );
    // A small payload still fits, and Bob's quota is his own.
    let (status, body) = post(&ada, 10).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = post(&bob, 6 * 1024).await;
    assert_eq!(status, 202, "{body}");

    // Runs deleted past their retention free their bytes (deleting the
    // script cancels its queued runs, which then count as history).
    let (status, _) = app
        .send(
            Method::DELETE,
            &ada,
            &format!("/v1/scripts/{echo}"),
            json!(null),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .send(
            Method::DELETE,
            &ada,
            &format!("/v1/scripts/{hello}"),
            json!(null),
        )
        .await;
    assert_eq!(status, 204);
    let depth = app.store.queue_depth(&ada_id).await.unwrap();
    assert_eq!(depth.runs, 0, "{depth:?}");
    assert!(depth.payload_bytes > 18 * 1024, "{depth:?}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    app.store
        .delete_old_runs(roost::store::now_millis())
        .await
        .unwrap();
    let depth = app.store.queue_depth(&ada_id).await.unwrap();
    assert_eq!(depth.payload_bytes, 0, "{depth:?}");
}
on_both_stores!(payloads_are_capped_in_size_and_in_total_per_user);
