//! What a run does inside roost (its outbox messages) is written with the
//! run's recorded end, once: not by a worker that lost the run, not twice
//! when a run killed mid-way is executed again.

mod support;

use std::time::Duration;

use roost::store::{MessageFilter, MessageRow, new_id, now_millis};
use serde_json::{Value, json};
use support::process::{Server, api, roost, text};
use support::{Backend, open_store, succeeded_with};

async fn effects_are_written_only_with_the_end_that_is_recorded(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let ada = store.create_user("ada", "h").await.unwrap();
    let script = support::bare_script(store.as_ref(), &ada.id).await;
    let run = store
        .enqueue_run(&roost::store::NewRun {
            user_id: ada.id.clone(),
            script_id: script.clone(),
            script_version: 1,
            handler: None,
            trigger_kind: roost::store::TriggerKind::Manual,
            trigger_spec: String::new(),
            payload: Value::Null,
            not_before: None,
        })
        .await
        .unwrap();
    let message = |body: &str| MessageRow {
        id: new_id("msg"),
        user_id: ada.id.clone(),
        script_id: script.clone(),
        run_id: run.id.clone(),
        channel: None,
        recipient: None,
        subject: None,
        body: body.into(),
        created_at: now_millis(),
    };
    let outbox = || async {
        let filter = MessageFilter {
            limit: 100,
            ..Default::default()
        };
        let rows = store.list_messages(&ada.id, &filter).await.unwrap();
        rows.into_iter().map(|m| m.body).collect::<Vec<_>>()
    };

    // The first worker's run goes stale and is handed to a second worker.
    assert_eq!(
        store.claim_run("w1", 10, &[]).await.unwrap().unwrap().id,
        run.id
    );
    assert_eq!(
        store
            .requeue_stale_runs(now_millis() + 1, true)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.claim_run("w2", 10, &[]).await.unwrap().unwrap().id,
        run.id
    );

    // The first worker's end, and a worker that never had the run, write
    // nothing: their ends are not recorded, so neither are their effects.
    for worker in ["w1", "w9"] {
        let finish = succeeded_with(vec![message(worker)]);
        assert!(
            !store
                .finish_run(&run.id, worker, &finish, None)
                .await
                .unwrap()
        );
    }
    assert_eq!(outbox().await, Vec::<String>::new());

    // The run's owner records its end with two messages, in one commit.
    let finish = succeeded_with(vec![message("one"), message("two")]);
    assert!(
        store
            .finish_run(&run.id, "w2", &finish, None)
            .await
            .unwrap()
    );
    assert_eq!(outbox().await.len(), 2);
    // The same report again (a retried write) adds nothing.
    assert!(
        !store
            .finish_run(&run.id, "w2", &finish, None)
            .await
            .unwrap()
    );
    let mut bodies = outbox().await;
    bodies.sort();
    assert_eq!(bodies, ["one", "two"]);
}
on_both_stores!(effects_are_written_only_with_the_end_that_is_recorded);

/// A run that left an outbox message is killed (SIGKILL) before it ends;
/// after the restart it is executed again, and the outbox holds its
/// message once.
async fn a_run_killed_after_its_message_leaves_it_once(backend: Backend) {
    let data = tempfile::tempdir().unwrap();
    let database = support::database_url(backend, data.path()).await;
    let env = [("ROOST_DATABASE_URL", database.as_str())];
    let flags = ["--workers", "1", "--run-stale-secs", "1"];
    let server = Server::start_with(data.path(), &flags, &env);
    let created = roost(data.path(), &["user", "create", "ada"], &env);
    let token = text(&created.stdout).trim().to_string();
    assert!(!token.is_empty(), "{}", text(&created.stderr));

    let component = std::fs::read(roost_tests::example_path("notify")).unwrap();
    let deployed = api(
        reqwest::Method::POST,
        &format!("{}/v1/scripts/deploy", server.url),
        &token,
        json!({ "name": "notify", "component": support::b64(&component) }),
    )
    .await;
    let script = deployed["script_id"].as_str().unwrap().to_string();
    let started = api(
        reqwest::Method::POST,
        &format!("{}/v1/scripts/{script}/run", server.url),
        &token,
        json!({ "payload": { "body": "backup done", "then_sleep_ms": 4000 } }),
    )
    .await;
    let run = started["run_id"].as_str().unwrap().to_string();
    let run_status = |base: String| {
        let (token, run) = (token.clone(), run.clone());
        async move {
            let url = format!("{base}/v1/runs/{run}");
            let body = api(reqwest::Method::GET, &url, &token, Value::Null).await;
            body["run"]["status"].as_str().unwrap().to_string()
        }
    };
    for _ in 0..200 {
        if run_status(server.url.clone()).await == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(run_status(server.url.clone()).await, "running");
    // The message is sent at once; the script then sleeps.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill_hard();

    let server = Server::start_with(data.path(), &flags, &env);
    let mut status = String::new();
    for _ in 0..400 {
        status = run_status(server.url.clone()).await;
        if status == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "succeeded", "the orphaned run ran again");
    let outbox = api(
        reqwest::Method::GET,
        &format!("{}/v1/messages", server.url),
        &token,
        Value::Null,
    )
    .await;
    let messages = outbox["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        1,
        "one message however often it ran: {outbox}"
    );
    assert_eq!(messages[0]["run_id"], run.as_str());
    assert_eq!(messages[0]["body"], "backup done");
    assert!(server.stop().success());
}
on_both_stores!(a_run_killed_after_its_message_leaves_it_once);
