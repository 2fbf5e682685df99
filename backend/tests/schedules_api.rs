//! Cron schedules on the server: a seconds-field schedule fires on time,
//! once per tick even with two nodes on one database; pausing stops it and
//! resuming restarts it; missed ticks follow the catch-up policy.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Backend, TestApp};

async fn tick_times(app: &TestApp, token: &str, script: &str) -> Vec<i64> {
    let (_, runs) = app
        .get(token, &format!("/v1/runs?script_id={script}&limit=200"))
        .await;
    let mut ticks: Vec<i64> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["payload"]["tick_at"].as_i64().unwrap())
        .collect();
    ticks.sort();
    ticks
}

async fn a_seconds_schedule_fires_once_per_tick_on_two_nodes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.another_node().await;
    let token = app.user("ada").await;
    let (status, deployed) = app
        .deploy(&token, "ticker", &roost_tests::example("ticker"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let script = deployed["script_id"].as_str().unwrap().to_string();
    let (_, listed) = app
        .get(&token, &format!("/v1/scripts/{script}/schedules"))
        .await;
    assert_eq!(listed["schedules"][0]["cron"], "*/2 * * * * *");
    assert_eq!(listed["schedules"][0]["overlap"], "skip");

    tokio::time::sleep(Duration::from_millis(7500)).await;
    let (status, paused) = app
        .send(
            Method::PATCH,
            &token,
            &format!("/v1/scripts/{script}/schedules/tick"),
            json!({ "paused": true }),
        )
        .await;
    assert_eq!(
        (status, paused["schedule"]["paused"].as_bool()),
        (200, Some(true)),
        "{paused}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ticks = tick_times(&app, &token, &script).await;
    assert!(ticks.len() >= 2, "at least two ticks in 7.5 s: {ticks:?}");
    assert!(
        ticks.len() <= 4,
        "no more than the schedule allows in 7.5 s: {ticks:?}"
    );
    assert!(
        ticks.iter().all(|t| t % 2000 == 0),
        "ticks sit on the schedule: {ticks:?}"
    );
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] == 2000),
        "one run per tick, none doubled or lost: {ticks:?}"
    );

    // Paused: nothing more fires.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        tick_times(&app, &token, &script).await,
        ticks,
        "a paused schedule does not fire"
    );

    // Resumed: it fires again.
    app.send(
        Method::PATCH,
        &token,
        &format!("/v1/scripts/{script}/schedules/tick"),
        json!({ "paused": false }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(
        tick_times(&app, &token, &script).await.len() > ticks.len(),
        "a resumed schedule fires"
    );

    // Every run finished and saw its tick.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, runs) = app
        .get(&token, &format!("/v1/runs?script_id={script}&limit=200"))
        .await;
    // Queued at the tick's instant by the timer, not found by the cron
    // scheduler's loop, which looks every 500 ms.
    let mut lags: Vec<i64> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["queued_at"].as_i64().unwrap() - run["payload"]["tick_at"].as_i64().unwrap())
        .collect();
    lags.sort();
    assert!(
        lags[lags.len() / 2] <= 100,
        "ticks queued within 100 ms of their time (median): {lags:?}"
    );
    for run in runs["runs"].as_array().unwrap() {
        if run["status"] == "running" || run["status"] == "queued" {
            continue;
        }
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(
            (run["trigger_kind"].as_str(), run["trigger_spec"].as_str()),
            (Some("schedule"), Some("*/2 * * * * *"))
        );
    }

    let (status, body) = app
        .send(
            Method::PATCH,
            &token,
            &format!("/v1/scripts/{script}/schedules/tick"),
            json!({ "catch_up": "always" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_policy"))
    );
    let (status, _) = app
        .send(
            Method::PATCH,
            &token,
            &format!("/v1/scripts/{script}/schedules/nope"),
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
}
on_both_stores!(a_seconds_schedule_fires_once_per_tick_on_two_nodes);

/// A script deployed an hour ago whose nodes were all down since: on the
/// next start, `run_once` catches up the latest missed tick exactly once;
/// `skip` (the default) does not.
#[tokio::test]
async fn missed_ticks_follow_the_catch_up_policy() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| config.runner.workers = 0).await;
    let token = app.user("ada").await;
    let heartbeat = roost_tests::example("heartbeat");
    let mut scripts = Vec::new();
    for name in ["catches-up", "skips"] {
        let (_, deployed) = app.deploy(&token, name, &heartbeat).await;
        scripts.push(deployed["script_id"].as_str().unwrap().to_string());
    }
    let (status, _) = app
        .send(
            Method::PATCH,
            &token,
            &format!("/v1/scripts/{}/schedules/beat", scripts[0]),
            json!({ "catch_up": "run_once" }),
        )
        .await;
    assert_eq!(status, 200);
    let pool = sqlx::SqlitePool::connect(&roost::config::sqlite_url(app.dir.path()))
        .await
        .unwrap();
    sqlx::query("UPDATE scripts SET created_at = created_at - 3600000")
        .execute(&pool)
        .await
        .unwrap();

    // The latest tick when the nodes start is at most 5 minutes before
    // this (measured from here, not after: a 5-minute boundary may pass
    // while the nodes start).
    let nodes_started = roost::store::now_millis();
    for _ in 0..2 {
        app.another_node().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let runs = |script: String| {
        let app = &app;
        let token = token.clone();
        async move {
            let (_, runs) = app
                .get(&token, &format!("/v1/runs?script_id={script}"))
                .await;
            runs["runs"].as_array().unwrap().clone()
        }
    };
    let caught: Vec<Value> = runs(scripts[0].clone()).await;
    assert_eq!(
        caught.len(),
        1,
        "one catch-up run however many nodes start: {caught:?}"
    );
    let tick = caught[0]["payload"]["tick_at"].as_i64().unwrap();
    assert_eq!(tick % 300_000, 0, "the latest 5-minute tick");
    assert!(
        nodes_started - tick < 300_000 && tick <= roost::store::now_millis(),
        "the latest tick, {tick}, not an older one (nodes started at {nodes_started})"
    );
    // A live tick may fall while the nodes start (a 5-minute boundary);
    // only ticks from before they started were missed.
    let missed: Vec<Value> = runs(scripts[1].clone())
        .await
        .into_iter()
        .filter(|run| {
            run["payload"]["tick_at"]
                .as_i64()
                .is_some_and(|at| at < nodes_started)
        })
        .collect();
    assert!(
        missed.is_empty(),
        "skip: missed ticks are not run: {missed:?}"
    );
}

#[tokio::test]
async fn invalid_schedules_are_refused_at_deploy() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ada").await;
    for (cron, tz) in [
        ("61 * * * * *", None),
        ("*/2 * * * * *", Some("Mars/Olympus")),
    ] {
        let mut trigger = json!({ "kind": "schedule", "cron": cron });
        if let Some(tz) = tz {
            trigger["timezone"] = tz.into();
        }
        let (status, body) = app
            .deploy_with(&token, json!({
                "name": "bad",
                "component": support::b64(&support::bare_module()),
                "metadata": { "integrations": [], "triggers": [{ "name": "run", "trigger": trigger }] },
            }))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_schedule")),
            "{body}"
        );
    }
}
