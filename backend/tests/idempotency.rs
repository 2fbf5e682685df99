//! Manual runs under an `Idempotency-Key`: a client that retries after a
//! timeout or a dropped connection gets the run its first request queued,
//! never a second one.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, TestApp};

/// POSTs a run of `script` with `key` and `body`: (status, replayed header, answer).
async fn start(
    app: &TestApp,
    token: &str,
    script: &str,
    key: &str,
    body: Value,
    wait: bool,
) -> (u16, Option<String>, Value) {
    let query = if wait { "?wait=true" } else { "" };
    let response = app
        .client
        .post(format!("{}/v1/scripts/{script}/run{query}", app.base))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_string());
    (status, replayed, response.json().await.unwrap())
}

async fn runs_of(app: &TestApp, token: &str, script: &str) -> usize {
    let (_, listed) = app
        .get(token, &format!("/v1/runs?script_id={script}&limit=200"))
        .await;
    listed["runs"].as_array().unwrap().len()
}

async fn a_repeated_key_answers_with_the_first_run(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.event_dedup_window = Duration::from_secs(2);
    })
    .await;
    let ada = app.user("ada").await;
    let (status, deployed) = app
        .deploy(&ada, "hello", &roost_tests::example("hello"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let script = deployed["script_id"].as_str().unwrap().to_string();
    let body = json!({ "payload": { "name": "ada" } });

    let (status, replayed, first) = start(&app, &ada, &script, "k-1", body.clone(), false).await;
    assert_eq!(
        (status, replayed.as_deref()),
        (202, Some("false")),
        "{first}"
    );
    let run = first["run_id"].as_str().unwrap().to_string();
    // The retry, and a retry that waits: the same run, once.
    let (status, replayed, again) = start(&app, &ada, &script, "k-1", body.clone(), false).await;
    assert_eq!(
        (status, replayed.as_deref()),
        (202, Some("true")),
        "{again}"
    );
    assert_eq!(again["run_id"], run.as_str());
    let (status, _, waited) = start(&app, &ada, &script, "k-1", body.clone(), true).await;
    assert_eq!(status, 200, "{waited}");
    assert_eq!(waited["run_id"], run.as_str());
    assert_eq!(waited["status"], "succeeded", "{waited}");
    assert_eq!(runs_of(&app, &ada, &script).await, 1);

    // The same key for another request is a mistake, said as such.
    let other = json!({ "payload": { "name": "bob" } });
    let (status, _, refused) = start(&app, &ada, &script, "k-1", other, false).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    // Keys are per user: Bob's k-1 is his own.
    let bob = app.user("bob").await;
    let (status, deployed) = app
        .deploy(&bob, "hello", &roost_tests::example("hello"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let bobs = deployed["script_id"].as_str().unwrap().to_string();
    let (status, _, his) = start(&app, &bob, &bobs, "k-1", body.clone(), false).await;
    assert_eq!(status, 202, "{his}");
    assert_ne!(his["run_id"], run.as_str());

    // Twelve concurrent first requests with one key queue one run.
    let app = std::sync::Arc::new(app);
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (app, ada, script, body) = (app.clone(), ada.clone(), script.clone(), body.clone());
        burst.spawn(async move { start(&app, &ada, &script, "k-burst", body, false).await });
    }
    let answers = burst.join_all().await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(status, _, answer)| {
            assert_eq!(*status, 202, "{answer}");
            answer["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(runs_of(&app, &ada, &script).await, 2);

    // Past the window the key is free again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, replayed, later) = start(&app, &ada, &script, "k-1", body, false).await;
    assert_eq!(
        (status, replayed.as_deref()),
        (202, Some("false")),
        "{later}"
    );
    assert_ne!(later["run_id"], run.as_str());

    // Keys that are not keys.
    for bad in ["has space", &"k".repeat(256)] {
        let (status, _, refused) = start(&app, &ada, &script, bad, json!({}), false).await;
        assert_eq!(status, 400, "{refused}");
        assert_eq!(refused["error"]["code"], "invalid_idempotency_key");
    }
}
on_both_stores!(a_repeated_key_answers_with_the_first_run);
