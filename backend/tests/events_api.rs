//! Events: each reaches exactly the subscribed handlers of the sender's
//! scripts, with its payload; a repeated event id runs once.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Backend, TestApp};

async fn finished(app: &TestApp, token: &str, run_id: &str) -> Value {
    for _ in 0..400 {
        let (_, run) = app.get(token, &format!("/v1/runs/{run_id}")).await;
        let status = run["run"]["status"].as_str().unwrap().to_string();
        if status != "queued" && status != "running" {
            return run["run"].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {run_id} did not finish");
}

async fn an_event_reaches_exactly_the_subscribed_handlers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let echo = roost_tests::example("event-echo");
    for name in ["echo-a", "echo-b"] {
        assert_eq!(app.deploy(&ada, name, &echo).await.0, 201);
    }
    assert_eq!(
        app.deploy(&ada, "hello", &roost_tests::example("hello"))
            .await
            .0,
        201
    );
    assert_eq!(app.deploy(&bob, "echo", &echo).await.0, 201);

    let (status, accepted) = app
        .send(
            Method::POST,
            &ada,
            "/v1/events/order.created",
            json!({ "id": "evt-1", "source": "shop", "payload": { "order": 7 } }),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["duplicate"], false);
    let run_ids: Vec<String> = accepted["run_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        run_ids.len(),
        2,
        "one run per subscribed script of Ada's; none of Bob's, none for hello"
    );

    for id in &run_ids {
        let run = finished(&app, &ada, id).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["handler"], "on_created");
        assert_eq!(
            (run["trigger_kind"].as_str(), run["trigger_spec"].as_str()),
            (Some("event"), Some("order.created"))
        );
        let (_, logs) = app.get_text(&ada, &format!("/v1/runs/{id}/logs")).await;
        assert!(
            logs.contains("on_created got order.created: {\"order\":7}"),
            "{logs}"
        );
    }

    // The same event id again: acknowledged, nothing new runs.
    let (status, again) = app
        .send(
            Method::POST,
            &ada,
            "/v1/events/order.created",
            json!({ "id": "evt-1", "payload": { "order": 7 } }),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["run_ids"], accepted["run_ids"]);
    let (_, all) = app.get(&ada, "/v1/runs").await;
    assert_eq!(all["runs"].as_array().unwrap().len(), 2);
    let (_, bobs) = app.get(&bob, "/v1/runs").await;
    assert_eq!(bobs["runs"], json!([]));

    // Bob may use the same event id: ids are per user.
    let (_, his) = app
        .send(
            Method::POST,
            &bob,
            "/v1/events/order.paid",
            json!({ "id": "evt-1", "payload": null }),
        )
        .await;
    assert_eq!(his["duplicate"], false);
    let run = finished(&app, &bob, his["run_ids"][0].as_str().unwrap()).await;
    assert_eq!(run["handler"], "on_paid");

    // An event nobody subscribes to is accepted and runs nothing.
    let (status, none) = app
        .send(
            Method::POST,
            &ada,
            "/v1/events/order.refunded",
            json!({ "payload": {} }),
        )
        .await;
    assert_eq!(
        (status, none["run_ids"].as_array().unwrap().len()),
        (202, 0)
    );
    assert!(none["event_id"].as_str().unwrap().starts_with("evt_"));
}
on_both_stores!(an_event_reaches_exactly_the_subscribed_handlers);

async fn bad_events_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let (status, body) = app
        .send(
            Method::POST,
            &ada,
            "/v1/events/order.created",
            json!({ "type": "order.paid", "payload": 1 }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("event_type_mismatch"))
    );
    let (status, body) = app
        .send(
            Method::POST,
            &ada,
            "/v1/events/bad%20type",
            json!({ "payload": 1 }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_event_type"))
    );
    let (status, body) = app
        .send(
            Method::POST,
            &ada,
            "/v1/events/x",
            json!({ "payload": 1, "extra": true }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_body"))
    );
    let response = app
        .client
        .post(format!("{}/v1/events/x", app.base))
        .json(&json!({ "payload": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // `curl -d` sends a form content type: the body is still read as JSON,
    // as a run request's is; what is not JSON says so.
    for (body, status, code) in [
        (r#"{"id": "curl-1", "payload": {"n": 1}}"#, 202, None),
        ("n=1", 400, Some("malformed_json")),
    ] {
        let response = app
            .client
            .post(format!("{}/v1/events/order.created", app.base))
            .bearer_auth(&ada)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"].as_str(), code, "{answer}");
    }
}
on_both_stores!(bad_events_are_refused);

async fn concurrent_events_are_all_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    assert_eq!(
        app.deploy(&ada, "echo", &roost_tests::example("event-echo"))
            .await
            .0,
        201
    );
    let mut posts = Vec::new();
    for n in 0..40 {
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/v1/events/order.created", app.base),
            ada.clone(),
        );
        posts.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "payload": { "n": n } }))
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }));
    }
    for post in posts {
        assert_eq!(
            post.await.unwrap(),
            202,
            "concurrent writers must wait for each other, not fail"
        );
    }
    let (_, runs) = app.get(&ada, "/v1/runs?limit=100").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 40);
}
on_both_stores!(concurrent_events_are_all_accepted);
