//! The server over HTTP, as clients use it: auth, deploy, credentials,
//! scripts, registry docs, and bad input. Each scenario runs on SQLite and,
//! when `ROOST_TEST_POSTGRES_URL` is set, on PostgreSQL.

mod support;

use reqwest::Method;
use serde_json::json;
use support::{Backend, TestApp, b64, bare_module};

async fn every_v1_route_needs_a_valid_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app
        .client
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    for path in ["/v1/scripts", "/v1/integrations", "/v1/credentials"] {
        let response = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "missing_token", "{path}");
        let (status, body) = app.get("roost_not-a-real-token", path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_token")),
            "{path}"
        );
    }
    let response = app
        .client
        .post(format!("{}/v1/scripts/deploy", app.base))
        .header("authorization", "Basic abc")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
on_both_stores!(every_v1_route_needs_a_valid_token);

async fn deploy_versions_rollback_and_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ada").await;
    let (status, first) = app
        .deploy(&token, "beat", &roost_tests::example("heartbeat"))
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["version"], 1);
    let id = first["script_id"].as_str().unwrap().to_string();
    assert_eq!(first["content_hash"].as_str().unwrap().len(), 64);
    assert_eq!(first["metadata"]["handlers"][0]["name"], "beat");

    let (status, second) = app
        .deploy(&token, "beat", &roost_tests::example("hello"))
        .await;
    assert_eq!((status, second["version"].as_i64()), (201, Some(2)));
    assert_eq!(second["script_id"], id.as_str());

    let (_, listed) = app.get(&token, "/v1/scripts").await;
    assert_eq!(listed["scripts"].as_array().unwrap().len(), 1);
    assert_eq!(listed["scripts"][0]["current_version"], 2);

    let (_, script) = app.get(&token, &format!("/v1/scripts/{id}")).await;
    assert_eq!(
        script["triggers"],
        json!([{ "handler": "hello", "kind": "manual", "spec": "", "timezone": null }])
    );

    let (_, versions) = app.get(&token, &format!("/v1/scripts/{id}/versions")).await;
    let numbers: Vec<i64> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);

    let (status, rolled) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{id}/rollback"),
            json!({ "version": 1 }),
        )
        .await;
    assert_eq!(
        (status, rolled["script"]["current_version"].as_i64()),
        (200, Some(1))
    );
    let (_, script) = app.get(&token, &format!("/v1/scripts/{id}")).await;
    let handlers: Vec<&str> = script["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["handler"].as_str().unwrap())
        .collect();
    assert_eq!(
        handlers,
        ["beat", "status"],
        "rollback restores that version's triggers"
    );
    assert_eq!(script["triggers"][0]["kind"], "schedule");
    assert_eq!(script["triggers"][0]["spec"], "0 */5 * * * *");

    let (status, body) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{id}/rollback"),
            json!({ "version": 9 }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let (status, _) = app
        .send(
            Method::DELETE,
            &token,
            &format!("/v1/scripts/{id}"),
            json!(null),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&token, &format!("/v1/scripts/{id}")).await;
    assert_eq!(status, 404);
    assert!(
        app.store.triggers(&id).await.unwrap().is_empty(),
        "triggers go with the script"
    );
}
on_both_stores!(deploy_versions_rollback_and_delete);

async fn missing_credentials_answer_with_setup_urls_until_connected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ada").await;
    let component = roost_tests::example("welcome-email");
    let (status, refused) = app.deploy(&token, "welcome", &component).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "missing_credentials");
    let missing = refused["error"]["details"]["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["integration"], "sendgrid");
    let setup_url = missing[0]["setup_url"].as_str().unwrap();
    assert!(
        setup_url.starts_with(&format!(
            "{}/integrations/sendgrid/setup?user=usr_",
            app.base
        )),
        "{setup_url}"
    );
    let (_, listed) = app.get(&token, "/v1/scripts").await;
    assert_eq!(
        listed["scripts"],
        json!([]),
        "a refused deploy stores nothing"
    );

    // An OAuth credential cannot be pasted; a wrong key is named.
    let (status, body) = app
        .send(
            Method::PUT,
            &token,
            "/v1/credentials/sendgrid",
            json!({ "values": { "token": "x" } }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_credential"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api_key")
    );
    let (status, body) = app
        .send(
            Method::PUT,
            &token,
            "/v1/credentials/gmail",
            json!({ "values": { "access_token": "ya29.x" } }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("setup URL")
    );

    let secret = "SG.very-secret-api-key-value";
    let (status, stored) = app
        .send(
            Method::PUT,
            &token,
            "/v1/credentials/sendgrid",
            json!({ "values": { "api_key": secret } }),
        )
        .await;
    assert_eq!(status, 200, "{stored}");
    assert!(!stored.to_string().contains(secret));
    let (_, connected) = app.get(&token, "/v1/credentials").await;
    assert_eq!(connected["credentials"][0]["integration"], "sendgrid");
    assert_eq!(connected["credentials"][0]["keys"], json!(["api_key"]));
    assert!(!connected.to_string().contains(secret));

    let (status, deployed) = app.deploy(&token, "welcome", &component).await;
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["metadata"]["integrations"], json!(["sendgrid"]));

    let (status, _) = app
        .send(
            Method::DELETE,
            &token,
            "/v1/credentials/sendgrid",
            json!(null),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app.deploy(&token, "welcome", &component).await;
    assert_eq!(status, 409, "disconnected again");
}
on_both_stores!(missing_credentials_answer_with_setup_urls_until_connected);

async fn unknown_and_duplicate_integrations_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ada").await;
    let triggers = json!([{ "name": "run", "trigger": { "kind": "manual" } }]);
    let (status, body) = app
        .deploy_with(
            &token,
            json!({
                "name": "bare",
                "component": b64(&bare_module()),
                "metadata": { "integrations": ["sendgrid", "nope"], "triggers": triggers },
            }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("unknown_integration")),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["unknown"], json!(["nope"]));
    assert!(
        body["error"]["details"]["known"]
            .as_array()
            .unwrap()
            .contains(&json!("gmail"))
    );

    let (status, body) = app
        .deploy_with(
            &token,
            json!({
                "name": "bare",
                "component": b64(&bare_module()),
                "metadata": { "integrations": ["cron", "cron"], "triggers": triggers },
            }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("duplicate_integration")),
        "{body}"
    );

    // A component without metadata needs it stated; with it, it deploys.
    let (status, body) = app.deploy(&token, "bare", &bare_module()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("missing_metadata"))
    );
    let (status, body) = app
        .deploy_with(
            &token,
            json!({
                "name": "bare",
                "component": b64(&bare_module()),
                "metadata": { "integrations": ["cron"], "triggers": triggers },
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // A body that contradicts what the component embeds is refused.
    let (status, body) = app
        .deploy_with(
            &token,
            json!({
                "name": "welcome",
                "component": b64(&roost_tests::example("welcome-email")),
                "metadata": { "integrations": ["openai"] },
            }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("metadata_mismatch")),
        "{body}"
    );
}
on_both_stores!(unknown_and_duplicate_integrations_are_refused);

async fn bad_input_gets_a_precise_error_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.max_body_bytes = 64 * 1024).await;
    let token = app.user("ada").await;
    let url = format!("{}/v1/scripts/deploy", app.base);
    let raw = |body: &'static str| {
        app.client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let response = raw("{\"name\": \"x\", ").await.unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed_json");

    let response = raw("{\"name\": 5, \"component\": \"\"}").await.unwrap();
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_body");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("name"),
        "{body}"
    );

    // A body without a JSON content type (a bare `curl -d`) is read as JSON.
    let response = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_body", "{body}");

    let (status, body) = app
        .deploy_with(&token, json!({ "name": "x", "component": "not base64!!" }))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_base64"))
    );

    let (status, body) = app.deploy(&token, "x", b"#!/bin/sh\necho hi\n").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_wasm"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wasm32-wasip2 component")
    );

    let hello = roost_tests::example("hello");
    let (status, body) = app.deploy(&token, "x", &hello[..4000]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_wasm")),
        "{body}"
    );

    let (status, body) = app.deploy(&token, "../etc", &hello[..4000]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_name"))
    );

    // hello is about 270 KiB, four times the configured body cap.
    let (status, body) = app.deploy(&token, "x", &hello).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["limit_bytes"], app.config.max_body_bytes,
        "the error says the limit: {body}"
    );

    // A route asked with a method it does not take answers with the JSON
    // error body too (and the methods it takes in `Allow`).
    let response = app
        .client
        .delete(format!("{}/v1/runs", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");

    let (_, listed) = app.get(&token, "/v1/scripts").await;
    assert_eq!(
        listed["scripts"],
        json!([]),
        "no failed deploy left anything behind"
    );

    let (status, body) = app.get(&token, "/v1/no-such-route").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}
on_both_stores!(bad_input_gets_a_precise_error_and_stores_nothing);

async fn users_never_see_each_others_things(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let (_, deployed) = app
        .deploy(&ada, "hello", &roost_tests::example("hello"))
        .await;
    let id = deployed["script_id"].as_str().unwrap();
    app.send(
        Method::PUT,
        &ada,
        "/v1/credentials/openai",
        json!({ "values": { "api_key": "sk-ada" } }),
    )
    .await;

    let (_, listed) = app.get(&bob, "/v1/scripts").await;
    assert_eq!(listed["scripts"], json!([]));
    for path in [
        format!("/v1/scripts/{id}"),
        format!("/v1/scripts/{id}/versions"),
    ] {
        assert_eq!(app.get(&bob, &path).await.0, 404, "{path}");
    }
    assert_eq!(
        app.send(
            Method::POST,
            &bob,
            &format!("/v1/scripts/{id}/rollback"),
            json!({ "version": 1 })
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.send(
            Method::DELETE,
            &bob,
            &format!("/v1/scripts/{id}"),
            json!(null)
        )
        .await
        .0,
        404
    );
    let (_, credentials) = app.get(&bob, "/v1/credentials").await;
    assert_eq!(credentials["credentials"], json!([]));
    assert_eq!(
        app.send(Method::DELETE, &bob, "/v1/credentials/openai", json!(null))
            .await
            .0,
        404
    );

    // Bob deploying a script of the same name gets his own script.
    let (status, his) = app
        .deploy(&bob, "hello", &roost_tests::example("hello"))
        .await;
    assert_eq!((status, his["version"].as_i64()), (201, Some(1)));
    assert_ne!(his["script_id"], deployed["script_id"]);
    let (_, still) = app.get(&ada, &format!("/v1/scripts/{id}")).await;
    assert_eq!(still["script"]["current_version"], 1);
    let (_, credentials) = app.get(&ada, "/v1/credentials").await;
    assert_eq!(credentials["credentials"][0]["integration"], "openai");
}
on_both_stores!(users_never_see_each_others_things);

async fn registry_and_docs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ada").await;
    let (_, list) = app.get(&token, "/v1/integrations").await;
    let ids: Vec<&str> = list["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["integrationId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "cron",
            "github",
            "gmail",
            "messaging",
            "notion",
            "openai",
            "sendgrid",
            "shopify",
            "slack",
            "stripe"
        ]
    );

    let (status, gmail) = app.get(&token, "/v1/integrations/gmail").await;
    assert_eq!(status, 200);
    assert_eq!(gmail["authType"], "oauth2");
    assert_eq!(gmail["credentials"][0]["envVar"], "GMAIL_ACCESS_TOKEN");
    assert_eq!(gmail["outboundHosts"], json!(["gmail.googleapis.com"]));

    let (status, docs) = app.get_text(&token, "/v1/integrations/gmail/docs").await;
    assert_eq!(status, 200);
    assert!(docs.contains("# Gmail (`gmail`)"), "{docs}");
    assert!(docs.contains("`GMAIL_ACCESS_TOKEN`") && docs.contains("`GMAIL_REFRESH_TOKEN`"));
    assert!(docs.contains("### `send_message`"));
    assert!(docs.contains("roost_sdk::uses_integrations!(\"gmail\")"));

    let (_, both) = app
        .get_text(&token, "/v1/integrations/docs?names=slack,sendgrid")
        .await;
    assert!(both.contains("`SLACK_ACCESS_TOKEN`") && both.contains("`SENDGRID_API_KEY`"));
    let (_, index) = app.get_text(&token, "/v1/integrations/docs").await;
    assert!(index.contains("| `shopify` |"));

    // The connector view: operations with schemas, hints and how they run.
    let (status, ops) = app.get(&token, "/v1/integrations/gmail/operations").await;
    assert_eq!(status, 200, "{ops}");
    assert_eq!(ops["auth"]["type"], "oauth2");
    assert_eq!(
        ops["auth"]["credentials"][0]["placement"]["name"],
        "Authorization"
    );
    let by_id = |id: &str| {
        ops["operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id("list_messages")["executor"], "mapping");
    assert_eq!(by_id("send_message")["executor"], "code");
    assert_eq!(
        by_id("send_message")["rateLimits"]["requestsPerSecond"],
        5.0
    );
    assert_eq!(
        by_id("send_message")["inputSchema"]["required"],
        json!(["to", "subject", "body"])
    );
    let (status, _) = app.get(&token, "/v1/integrations/nope/operations").await;
    assert_eq!(status, 404);

    let (status, body) = app.get(&token, "/v1/integrations/nope/docs").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_integration"))
    );
    let (status, _) = app
        .get(&token, "/v1/integrations/docs?names=gmail,nope")
        .await;
    assert_eq!(status, 404);

    let stored = app.store.integration_definitions().await.unwrap();
    assert_eq!(stored.len(), 10, "definitions are upserted into the table");
}
on_both_stores!(registry_and_docs);

/// `/metrics` and `/v1/cluster` describe every tenant: they take the
/// operator's token, never a user's, and are off without one.
#[tokio::test]
async fn the_operator_views_take_the_operator_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.user("ada").await;
    for path in ["/metrics", "/v1/cluster"] {
        let (status, body) = app.get(&ada, path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("operator_only")),
            "{path}"
        );
    }
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.operator_token = Some("the-operators-own-token".into());
    })
    .await;
    let ada = app.user("ada").await;
    for path in ["/metrics", "/v1/cluster"] {
        let (status, body) = app.get(&ada, path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("operator_only")),
            "{path}"
        );
        let (status, _) = app.get("the-operators-own-token", path).await;
        assert_eq!(status, 200, "{path}");
    }
    let (_, metrics) = app.get_text("the-operators-own-token", "/metrics").await;
    assert!(metrics.contains("roost_queue_depth"), "{metrics}");
}
