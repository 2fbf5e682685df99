//! An HTTP request's run is begun by the server that received it and
//! recorded with its end. A server killed (SIGKILL) in the middle of such
//! a run keeps nothing of it: no run, no state write, nothing run again.
//! A run that outlasted its caller's deadline was recorded as running
//! then: after the restart it is run again and recorded once.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Backend;
use support::process::{Server, api, roost, text};

/// The script's runs, oldest first: (trigger spec, status).
async fn runs_of(base: &str, token: &str, script: &str) -> Vec<(String, String)> {
    let url = format!("{base}/v1/runs?script_id={script}&limit=50");
    let page = api(reqwest::Method::GET, &url, token, Value::Null).await;
    let mut runs: Vec<(String, String)> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            assert_eq!(run["trigger_kind"], "http", "{run}");
            (
                run["trigger_spec"].as_str().unwrap().to_string(),
                run["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    runs.reverse();
    runs
}

async fn killed_mid_run_keeps_nothing_and_a_recorded_run_ends_once(backend: Backend) {
    let data = tempfile::tempdir().unwrap();
    let database = support::database_url(backend, data.path()).await;
    let env = [("ROOST_DATABASE_URL", database.as_str())];
    let flags = ["--run-stale-secs", "1"];
    let server = Server::start_with(data.path(), &flags, &env);
    let created = roost(data.path(), &["user", "create", "ada"], &env);
    let token = text(&created.stdout).trim().to_string();
    assert!(!token.is_empty(), "{}", text(&created.stderr));
    let component = roost_tests::example("http-echo");
    let deployed = api(
        reqwest::Method::POST,
        &format!("{}/v1/scripts/deploy", server.url),
        &token,
        json!({ "name": "echo", "component": support::b64(&component) }),
    )
    .await;
    let script = deployed["script_id"].as_str().unwrap().to_string();
    let listed = api(
        reqwest::Method::GET,
        &format!("{}/v1/scripts/{script}/http", server.url),
        &token,
        Value::Null,
    )
    .await;
    // Each handler's URL without the server's address, which changes
    // with the restart.
    let path_of = |handler: &str| -> String {
        let url = listed["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["handler"] == handler)
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_string();
        url[url.find("/h/").unwrap()..].to_string()
    };
    let (count, slow) = (path_of("count"), path_of("slow"));
    let client = reqwest::Client::new();

    let first = client
        .post(format!("{}{count}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.text().await.unwrap(), "1");
    // Past its 300 ms deadline: recorded as running, the caller let go.
    let accepted = client
        .post(format!("{}{slow}?ms=2500", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let slow_run = accepted.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A count that sleeps: its state write is in roost's hands when the
    // server dies.
    let in_flight = tokio::spawn({
        let url = format!("{}{count}?ms=4000", server.url);
        let client = client.clone();
        async move { client.post(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        runs_of(&server.url, &token, &script).await,
        [
            ("POST /count".to_string(), "succeeded".to_string()),
            ("POST /slow".to_string(), "running".to_string()),
        ],
        "a run begun for a waiting caller is recorded only when it ends"
    );
    server.kill_hard();
    let broken = in_flight.await.unwrap();
    assert!(broken.is_err(), "the caller's connection broke: {broken:?}");

    let server = Server::start_with(data.path(), &flags, &env);
    // The run recorded as running is re-queued once its heartbeat is
    // stale, and ends.
    let mut slow_status = String::new();
    for _ in 0..200 {
        let url = format!("{}/v1/runs/{slow_run}", server.url);
        let shown = api(reqwest::Method::GET, &url, &token, Value::Null).await;
        slow_status = shown["run"]["status"].as_str().unwrap().to_string();
        if slow_status == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(slow_status, "succeeded");
    // The killed count kept nothing: the next one counts 2.
    let next = client
        .post(format!("{}{count}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(next.text().await.unwrap(), "2");
    assert_eq!(
        runs_of(&server.url, &token, &script).await,
        [
            ("POST /count".to_string(), "succeeded".to_string()),
            ("POST /slow".to_string(), "succeeded".to_string()),
            ("POST /count".to_string(), "succeeded".to_string()),
        ]
    );
    assert!(server.stop().success());
}
on_both_stores!(killed_mid_run_keeps_nothing_and_a_recorded_run_ends_once);
