//! Runs on the server: manual runs (with and without waiting), what a run
//! sees, limits as run statuses, history, logs, cancel, and recovery of runs
//! whose worker died. On SQLite and, when configured, PostgreSQL.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::sdk_app::run_and_wait;
use support::{Backend, TestApp};

async fn a_manual_run_gets_exactly_its_integrations_credentials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    for (integration, key, value) in [
        ("sendgrid", "api_key", "SG.ada"),
        ("openai", "api_key", "sk-ada"),
    ] {
        let (status, _) = app
            .send(
                Method::PUT,
                &ada,
                &format!("/v1/credentials/{integration}"),
                json!({ "values": { key: value } }),
            )
            .await;
        assert_eq!(status, 200);
    }
    // Ada also has shopify connected, which this script does not declare;
    // Bob has his own sendgrid key.
    app.send(
        Method::PUT,
        &ada,
        "/v1/credentials/shopify",
        json!({ "values": { "access_token": "shpat_ada", "shop_domain": "ada.myshopify.com" } }),
    )
    .await;
    app.send(
        Method::PUT,
        &bob,
        "/v1/credentials/sendgrid",
        json!({ "values": { "api_key": "SG.bob" } }),
    )
    .await;

    let script = app.deploy_example(&ada, "report", "env-report").await;
    let run = run_and_wait(&app, &ada, &script, json!({ "payload": { "n": 1 } })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let stdout = run["stdout"].as_str().unwrap();
    let keys: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('=').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "OPENAI_API_KEY",
            "ROOST_INTEGRATION_OPENAI",
            "ROOST_INTEGRATION_SENDGRID",
            "ROOST_RUN_ID",
            "ROOST_SCRIPT_ID",
            "ROOST_SCRIPT_VERSION",
            "ROOST_TRIGGER",
            "SENDGRID_API_KEY"
        ],
        "{stdout}"
    );
    // The values reached the script, and are masked in what it printed.
    let masked = roost::execute::masking::MARKER;
    assert!(
        stdout.contains(&format!("SENDGRID_API_KEY={masked}\n"))
            && stdout.contains(&format!("OPENAI_API_KEY={masked}\n")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(
        "ROOST_RUN_ID={}\n",
        run["run_id"].as_str().unwrap()
    )));
    assert!(!stdout.contains("shpat_ada") && !stdout.contains("SG.bob"));
    // Each integration's description for the SDK: base URL and where the
    // credential goes, never the credential itself.
    let descriptor = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ROOST_INTEGRATION_SENDGRID="))
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(descriptor).unwrap(),
        json!({ "baseUrl": "https://api.sendgrid.com", "auth": {
            "envVar": "SENDGRID_API_KEY", "in": "header", "name": "Authorization", "prefix": "Bearer " } })
    );
    assert_eq!(run["stderr"], "payload: {\"n\":1}\n");
    assert_eq!(run["run"]["exit_code"], 0);
    assert_eq!(run["run"]["trigger_kind"], "manual");
}
on_both_stores!(a_manual_run_gets_exactly_its_integrations_credentials);

async fn limits_become_run_statuses_and_history_pages(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.run_limits.timeout = Duration::from_millis(300);
        config.run_limits.max_memory_bytes = 32 << 20;
        config.run_limits.max_output_bytes = 4096;
    })
    .await;
    let token = app.user("ada").await;
    let cases = [
        ("infinite-loop", "timed_out"),
        ("memory-hog", "limit_exceeded"),
        ("output-flood", "limit_exceeded"),
        ("forbidden-egress", "failed"),
    ];
    let mut ids = Vec::new();
    for (example, expected) in cases {
        // No retries here: this test counts runs.
        let (status, deployed) = app
            .deploy_with(&token, json!({ "name": example, "component": support::b64(&roost_tests::example(example)), "retries": { "max": 0 } }))
            .await;
        assert_eq!(status, 201, "{deployed}");
        let script = deployed["script_id"].as_str().unwrap().to_string();
        let run = run_and_wait(&app, &token, &script, json!({})).await;
        assert_eq!(run["status"], expected, "{example}: {run}");
        assert!(
            run["run"]["error"].as_str().is_some(),
            "{example}: the error says why"
        );
        ids.push(run["run_id"].as_str().unwrap().to_string());
    }
    // forbidden-egress exits 10 when roost refuses its request.
    let (_, refused) = app.get(&token, &format!("/v1/runs/{}", ids[3])).await;
    assert_eq!(refused["run"]["exit_code"], 10);
    // heartbeat has two handlers: naming neither is refused at once, and
    // nothing is queued.
    let (status, deployed) = app
        .deploy(&token, "heartbeat", &roost_tests::example("heartbeat"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let heartbeat = deployed["script_id"].as_str().unwrap();
    let (status, body) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{heartbeat}/run"),
            json!({}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "handler_required");
    assert_eq!(
        body["error"]["details"]["handlers"],
        json!(["beat", "status"])
    );
    let (_, none) = app
        .get(&token, &format!("/v1/runs?script_id={heartbeat}"))
        .await;
    assert_eq!(none["runs"], json!([]));

    let (_, flood) = app
        .get_text(&token, &format!("/v1/runs/{}/logs", ids[2]))
        .await;
    assert!(
        flood.starts_with("--- stdout ---\nflood line 0:"),
        "{flood}"
    );
    assert!(flood.contains("[roost: output truncated at 4096 bytes]"));

    let (_, page) = app.get(&token, "/v1/runs?limit=2").await;
    let first: Vec<&str> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(first.len(), 2);
    let next = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&token, &format!("/v1/runs?limit=10&cursor={next}"))
        .await;
    assert_eq!(rest["next_cursor"], Value::Null, "the last page says so");
    assert_eq!(
        rest["runs"].as_array().unwrap().len() + 2,
        4,
        "pages cover every run once"
    );
    let (_, timed_out) = app.get(&token, "/v1/runs?status=timed_out").await;
    assert_eq!(timed_out["runs"].as_array().unwrap().len(), 1);
    let (status, body) = app.get(&token, "/v1/runs?status=bogus").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_status"))
    );

    // Another user sees none of it.
    let bob = app.user("bob").await;
    let (_, bobs) = app.get(&bob, "/v1/runs").await;
    assert_eq!(bobs["runs"], json!([]));
    assert_eq!(app.get(&bob, &format!("/v1/runs/{}", ids[0])).await.0, 404);
    assert_eq!(
        app.get_text(&bob, &format!("/v1/runs/{}/logs", ids[0]))
            .await
            .0,
        404
    );
}
on_both_stores!(limits_become_run_statuses_and_history_pages);

async fn runs_can_be_cancelled_and_deleting_a_script_cancels_its_queue(backend: Backend) {
    // No workers: runs stay queued.
    let app = TestApp::spawn_with(backend, |config| config.runner.workers = 0).await;
    let token = app.user("ada").await;
    let script = app.deploy_example(&token, "hello", "hello").await;
    let (status, queued) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{script}/run"),
            json!(null),
        )
        .await;
    assert_eq!((status, queued["status"].as_str()), (202, Some("queued")));
    let run_id = queued["run_id"].as_str().unwrap();
    let (status, cancelled) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/runs/{run_id}/cancel"),
            json!(null),
        )
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled"))
    );
    let (status, body) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/runs/{run_id}/cancel"),
            json!(null),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("run_finished"))
    );

    let (_, second) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{script}/run"),
            json!({ "handler": "hello" }),
        )
        .await;
    let (status, body) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{script}/run"),
            json!({ "handler": "nope" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("unknown_handler"))
    );
    app.send(
        Method::DELETE,
        &token,
        &format!("/v1/scripts/{script}"),
        json!(null),
    )
    .await;
    let (_, run) = app
        .get(
            &token,
            &format!("/v1/runs/{}", second["run_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(run["run"]["status"], "cancelled");
    assert_eq!(run["run"]["error"], "the script was deleted");
}
on_both_stores!(runs_can_be_cancelled_and_deleting_a_script_cancels_its_queue);

async fn runs_of_a_dead_worker_are_requeued_and_run_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.workers = 0;
    })
    .await;
    let token = app.user("ada").await;
    let script = app.deploy_example(&token, "hello", "hello").await;
    let (_, queued) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{script}/run"),
            json!(null),
        )
        .await;
    let run_id = queued["run_id"].as_str().unwrap().to_string();
    // A worker claims it and dies without a heartbeat.
    let claimed = app
        .store
        .claim_run("dead-worker", 4, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, run_id);
    assert!(
        app.store
            .claim_run("other-worker", 4, &[])
            .await
            .unwrap()
            .is_none(),
        "a running run is never claimed twice"
    );

    // Once its heartbeat is stale, the reaper's query puts it back on the queue.
    let requeued = app
        .store
        .requeue_stale_runs(roost::store::now_millis() + 1, true)
        .await
        .unwrap();
    assert_eq!(requeued, 1);
    let again = app
        .store
        .claim_run("live-worker", 4, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.worker_id.as_deref()),
        (run_id.as_str(), Some("live-worker"))
    );
    // The dead worker's late heartbeat does not take the run back.
    assert!(
        !app.store
            .heartbeat_run(&run_id, "dead-worker")
            .await
            .unwrap(),
        "the dead worker is told the run is not its any more"
    );
    let (_, run) = app.get(&token, &format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["run"]["worker_id"], "live-worker");
}
on_both_stores!(runs_of_a_dead_worker_are_requeued_and_run_once);

async fn failed_runs_are_retried_with_backoff_and_linked(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.retry_base = Duration::from_millis(200);
        config.run_limits.timeout = Duration::from_millis(300);
    })
    .await;
    let token = app.user("ada").await;
    // forbidden-egress exits 10 without a URL: a plain failure.
    let (status, deployed) = app
        .deploy_with(&token, json!({ "name": "flaky", "component": support::b64(&roost_tests::example("forbidden-egress")), "retries": { "max": 2 } }))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let script = deployed["script_id"].as_str().unwrap();
    let first = run_and_wait(&app, &token, script, json!({})).await;
    assert_eq!(first["status"], "failed");
    let first_id = first["run_id"].as_str().unwrap().to_string();

    let mut attempts = Vec::new();
    for _ in 0..200 {
        let (_, runs) = app
            .get(&token, &format!("/v1/runs?script_id={script}"))
            .await;
        attempts = runs["runs"].as_array().unwrap().clone();
        if attempts.len() == 3 && attempts.iter().all(|r| r["status"] == "failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    attempts.sort_by_key(|r| r["attempt"].as_i64().unwrap());
    let numbers: Vec<i64> = attempts
        .iter()
        .map(|r| r["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        [1, 2, 3],
        "the first run and two retries, then no more: {attempts:?}"
    );
    for retry in &attempts[1..] {
        assert_eq!(
            retry["first_run_id"],
            first_id.as_str(),
            "every attempt links to the first"
        );
        assert_eq!(retry["status"], "failed");
    }
    // Backoff: each retry waited at least half its base delay (jitter is 0.5-1.5x).
    let gap = |a: &Value, b: &Value| {
        b["started_at"].as_i64().unwrap() - a["finished_at"].as_i64().unwrap()
    };
    assert!(gap(&attempts[0], &attempts[1]) >= 100, "{attempts:?}");
    assert!(
        gap(&attempts[1], &attempts[2]) >= 200,
        "the second retry waits about twice as long: {attempts:?}"
    );

    // A timeout is not retried unless the policy says so.
    let (_, looping) = app
        .deploy(&token, "loop", &roost_tests::example("infinite-loop"))
        .await;
    let looping = looping["script_id"].as_str().unwrap();
    let run = run_and_wait(&app, &token, looping, json!({})).await;
    assert_eq!(run["status"], "timed_out");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, runs) = app
        .get(&token, &format!("/v1/runs?script_id={looping}"))
        .await;
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        1,
        "timed_out is not retried by default"
    );

    let (status, body) = app
        .deploy_with(&token, json!({ "name": "x", "component": support::b64(&roost_tests::example("hello")), "retries": { "max": 99 } }))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_retries"))
    );
}
on_both_stores!(failed_runs_are_retried_with_backoff_and_linked);

async fn a_script_never_runs_more_than_its_concurrency_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.workers = 3;
        config.runner.per_script_concurrency = 1;
        config.run_limits.timeout = Duration::from_millis(400);
    })
    .await;
    let token = app.user("ada").await;
    let (_, deployed) = app
        .deploy_with(&token, json!({ "name": "slow", "component": support::b64(&roost_tests::example("sleeper")), "retries": { "max": 0 } }))
        .await;
    let script = deployed["script_id"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, queued) = app
            .send(
                Method::POST,
                &token,
                &format!("/v1/scripts/{script}/run"),
                json!(null),
            )
            .await;
        ids.push(queued["run_id"].as_str().unwrap().to_string());
    }
    let mut spans = Vec::new();
    for id in &ids {
        let finished = loop {
            let (_, run) = app.get(&token, &format!("/v1/runs/{id}")).await;
            if run["run"]["finished_at"].is_i64() {
                break run["run"].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(finished["status"], "timed_out");
        spans.push((
            finished["started_at"].as_i64().unwrap(),
            finished["finished_at"].as_i64().unwrap(),
        ));
    }
    spans.sort();
    assert!(
        spans.windows(2).all(|w| w[1].0 >= w[0].1),
        "runs of one script never overlapped: {spans:?}"
    );
}
on_both_stores!(a_script_never_runs_more_than_its_concurrency_limit);

async fn finished_runs_past_retention_are_deleted(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.retention = Duration::from_millis(300);
        config.runner.heartbeat = Duration::from_millis(100);
    })
    .await;
    let token = app.user("ada").await;
    let script = app.deploy_example(&token, "hello", "hello").await;
    let run = run_and_wait(&app, &token, &script, json!(null)).await;
    let id = run["run_id"].as_str().unwrap();
    assert_eq!(app.get(&token, &format!("/v1/runs/{id}")).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        app.get(&token, &format!("/v1/runs/{id}")).await.0,
        404,
        "deleted after the retention period"
    );
}
on_both_stores!(finished_runs_past_retention_are_deleted);

async fn scripts_set_their_own_limits_within_the_server_maxima(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.run_limits.timeout = Duration::from_secs(30);
        config.max_run_limits.timeout = Duration::from_secs(60);
    })
    .await;
    let token = app.user("ada").await;
    let component = support::b64(&roost_tests::example("infinite-loop"));
    let (status, body) = app
        .deploy_with(
            &token,
            json!({ "name": "loop", "component": component, "limits": { "timeout_ms": 120000 } }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_limits")),
        "above the server maximum"
    );
    let (status, deployed) = app
        .deploy_with(&token, json!({ "name": "loop", "component": component, "limits": { "timeout_ms": 250, "output_bytes": 1000 }, "retries": { "max": 0 } }))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let run = run_and_wait(
        &app,
        &token,
        deployed["script_id"].as_str().unwrap(),
        json!(null),
    )
    .await;
    assert_eq!(
        run["status"], "timed_out",
        "the script's own 250 ms, not the server's 30 s"
    );
    assert!(run["run"]["duration_ms"].as_i64().unwrap() < 5_000);
    assert_eq!(run["run"]["output_cap"], 1000);
}
on_both_stores!(scripts_set_their_own_limits_within_the_server_maxima);

async fn cancelling_a_running_run_stops_the_script(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.workers = 1;
        config.runner.heartbeat = Duration::from_millis(100);
        config.run_limits.timeout = Duration::from_secs(60);
    })
    .await;
    let token = app.user("ada").await;
    let sleeper = app.deploy_example(&token, "sleeper", "sleeper").await;
    let hello = app.deploy_example(&token, "hello", "hello").await;
    let (_, queued) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{sleeper}/run"),
            json!(null),
        )
        .await;
    let id = queued["run_id"].as_str().unwrap().to_string();
    for _ in 0..200 {
        if app.get(&token, &format!("/v1/runs/{id}")).await.1["run"]["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/runs/{id}/cancel"),
            json!(null),
        )
        .await;
    assert_eq!(status, 200);
    // The only worker is free again well before the sleeper's minute is up.
    let started = std::time::Instant::now();
    let run = run_and_wait(&app, &token, &hello, json!(null)).await;
    assert_eq!(run["status"], "succeeded");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the cancelled script was stopped"
    );
    assert_eq!(
        app.get(&token, &format!("/v1/runs/{id}")).await.1["run"]["status"],
        "cancelled"
    );
}
on_both_stores!(cancelling_a_running_run_stops_the_script);

async fn orphaned_runs_can_be_failed_instead(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.runner.workers = 0).await;
    let token = app.user("ada").await;
    let script = app.deploy_example(&token, "hello", "hello").await;
    let (_, queued) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{script}/run"),
            json!(null),
        )
        .await;
    let run_id = queued["run_id"].as_str().unwrap().to_string();
    app.store
        .claim_run("dead-worker", 4, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        app.store
            .requeue_stale_runs(roost::store::now_millis() + 1, false)
            .await
            .unwrap(),
        1
    );
    let (_, run) = app.get(&token, &format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["run"]["status"], "failed");
    assert!(run["run"]["error"].as_str().unwrap().contains("worker"));
    assert!(
        app.store
            .claim_run("live-worker", 4, &[])
            .await
            .unwrap()
            .is_none(),
        "a failed orphan is not run again"
    );
}
on_both_stores!(orphaned_runs_can_be_failed_instead);

/// Queues a manual run of `script` with `body`; its id.
async fn queue_run(app: &TestApp, token: &str, script: &str, body: Value) -> String {
    let (status, queued) = app
        .send(
            Method::POST,
            token,
            &format!("/v1/scripts/{script}/run"),
            body,
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    queued["run_id"].as_str().unwrap().to_string()
}

/// A worker handed several runs at once (SQLite, while the queue is busy)
/// is not held up by a long one among them: the outcome of the run before
/// it is written while it still runs, and the runs after it go back to the
/// queue, where the other worker runs them. (PostgreSQL hands out one run
/// at a time, and must show the same.)
async fn a_long_run_holds_up_neither_earlier_outcomes_nor_later_runs(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.workers = 2;
        // One user's runs, on both workers.
        config.runner.per_user_workers = Some(2);
        config.run_limits.timeout = Duration::from_secs(60);
    })
    .await;
    let token = app.user("ada").await;
    let sleeper = app.deploy_example(&token, "sleeper", "sleeper").await;
    let hello = app.deploy_example(&token, "hello", "hello").await;
    let run = |id: String| {
        let (app, token) = (&app, &token);
        async move { app.get(token, &format!("/v1/runs/{id}")).await.1["run"].clone() }
    };
    let sleep = |ms: u64| json!({ "payload": { "ms": ms } });
    let running = |id: String| async move {
        for _ in 0..500 {
            if run(id.clone()).await["status"] == "running" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{id} never started");
    };
    // Both workers are busy, one for longer; the queue fills behind them.
    let short = queue_run(&app, &token, &sleeper, sleep(300)).await;
    running(short).await;
    let longer = queue_run(&app, &token, &sleeper, sleep(1_000)).await;
    running(longer).await;
    // (Runs queued within one millisecond are claimed in any order.)
    let mut queued = Vec::new();
    for body in [
        json!(null),
        sleep(3_000),
        json!(null),
        json!(null),
        json!(null),
    ] {
        let script = if body.is_null() { &hello } else { &sleeper };
        queued.push(queue_run(&app, &token, script, body).await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let (before, long, after) = (&queued[0], &queued[1], &queued[2..]);

    // The first worker to be free is handed `before`, `long` and the first
    // of `after` (its share of five). Every run but `long` ends, and its
    // outcome is written, while `long` still runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for id in std::iter::once(before).chain(after) {
        loop {
            let ended = run(id.clone()).await;
            if ended["finished_at"].is_i64() {
                assert_eq!(ended["status"], "succeeded", "{ended}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{ended}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let long_run = run(long.clone()).await;
        assert!(
            long_run["finished_at"].is_null(),
            "{id} waited for the long run: {long_run}"
        );
    }
    // The long run ends in its own time, once.
    loop {
        let ended = run(long.clone()).await;
        if ended["finished_at"].is_i64() {
            assert_eq!(ended["status"], "succeeded", "{ended}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ended}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, runs) = app.get(&token, "/v1/runs?limit=20").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 7, "{runs}");
}
on_both_stores!(a_long_run_holds_up_neither_earlier_outcomes_nor_later_runs);
