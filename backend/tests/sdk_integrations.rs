//! The guest SDK's integration clients against a real roost server: the
//! gmail and slack definitions point (through the server's integration
//! config) at local stand-ins for the Google and Slack APIs, connections go
//! through the real OAuth flow, and the example scripts run in the sandbox.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::oauth_provider::Provider;
use support::sdk_app::{
    access_token, app_with, app_with_stand_ins, deploy_connecting, finished, run_and_wait,
};
use support::stand_in::StandIn;
use support::{Backend, TestApp};

#[tokio::test]
async fn gmail_digest_reads_the_inbox_and_posts_the_digest_to_slack() {
    gmail_digest(false).await;
}

/// The same script, unchanged, when gmail and slack keep their tokens on
/// the host: the typed clients call through roost, and the run records
/// each call.
#[tokio::test]
async fn gmail_digest_works_the_same_with_host_only_credentials() {
    gmail_digest(true).await;
}

async fn gmail_digest(host_only: bool) {
    let provider = Provider::start();
    let (google, slack) = (StandIn::google().await, StandIn::slack().await);
    let app = app_with(&provider, &google, &slack, host_only).await;
    let ada = app.user("ada").await;
    let script = deploy_connecting(&app, &ada, "gmail-digest").await;
    google.expect_token(&access_token(&app, &ada, "gmail", "GMAIL_ACCESS_TOKEN").await);
    slack.expect_token(&access_token(&app, &ada, "slack", "SLACK_ACCESS_TOKEN").await);

    let run = run_and_wait(&app, &ada, &script, json!({ "handler": "digest" })).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    assert!(
        run["stdout"]
            .as_str()
            .unwrap()
            .contains("posted a digest of 2 message(s) to C0INBOX"),
        "{run}"
    );

    // Gmail: one search for unread mail, then each message's headers.
    let gmail_calls = google.requests();
    assert_eq!(gmail_calls.len(), 3, "{gmail_calls:?}");
    let list = &gmail_calls[0];
    assert_eq!(
        (list.method.as_str(), list.path.as_str()),
        ("GET", "/gmail/v1/users/me/messages")
    );
    assert_eq!(list.param("q").as_deref(), Some("is:unread"));
    assert_eq!(list.param("maxResults").as_deref(), Some("20"));
    for (call, id) in gmail_calls[1..].iter().zip(["m1", "m2"]) {
        assert_eq!(call.path, format!("/gmail/v1/users/me/messages/{id}"));
        assert_eq!(call.param("format").as_deref(), Some("metadata"));
    }

    // Slack: exactly one message, built from Gmail's messages.
    let slack_calls = slack.requests();
    assert_eq!(slack_calls.len(), 1, "{slack_calls:?}");
    let post = &slack_calls[0];
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", "/api/chat.postMessage")
    );
    assert!(
        post.content_type
            .as_deref()
            .unwrap()
            .starts_with("application/json")
    );
    let message = post.json();
    assert_eq!(message["channel"], "#inbox");
    let text = message["text"].as_str().unwrap();
    assert!(text.starts_with("2 unread message(s):"), "{text}");
    assert!(
        text.contains("*Quarterly report* from Ada Lovelace <ada@example.com>"),
        "{text}"
    );
    assert!(
        text.contains("*Lunch on Friday?* from Bob <bob@example.com>"),
        "{text}"
    );
    // Every call carried the token of the right integration.
    assert!(gmail_calls.iter().chain(&slack_calls).all(|call| {
        call.authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer "))
    }));
    // Host-mediated calls are on the run's record; direct ones are not.
    let (_, shown) = app
        .get(
            &ada,
            &format!("/v1/runs/{}", run["run_id"].as_str().unwrap()),
        )
        .await;
    let recorded: Vec<(String, String)> = shown["method_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["method"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    if host_only {
        let ok = |m: &str| (m.to_string(), "ok".to_string());
        assert_eq!(
            recorded,
            [
                ok("list_messages"),
                ok("get_message"),
                ok("get_message"),
                ok("post_message")
            ]
        );
    } else {
        assert!(recorded.is_empty(), "{recorded:?}");
    }
}

#[tokio::test]
async fn order_alert_turns_a_shopify_event_into_a_slack_message() {
    let provider = Provider::start();
    let (google, slack) = (StandIn::google().await, StandIn::slack().await);
    let app = app_with_stand_ins(&provider, &google, &slack).await;
    let ada = app.user("ada").await;
    deploy_connecting(&app, &ada, "order-alert").await;
    slack.expect_token(&access_token(&app, &ada, "slack", "SLACK_ACCESS_TOKEN").await);

    let (status, accepted) = app
        .send(
            Method::POST,
            &ada,
            "/v1/events/shopify.orders.create",
            json!({ "id": "order-1001", "payload": {
                "id": 820982911946154508u64, "name": "#1001", "total_price": "25.00",
                "currency": "EUR", "email": "grace@example.com"
            } }),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["run_ids"][0].as_str().unwrap();
    let run = finished(&app, &ada, run_id).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    let posts = slack.requests();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].json()["channel"], "#orders");
    assert_eq!(
        posts[0].json()["text"],
        "New order #1001: 25.00 EUR from grace@example.com"
    );
    assert!(
        google.requests().is_empty(),
        "order-alert never calls Gmail"
    );
}

/// Each mail is digested once across runs, even when a run fails halfway:
/// Gmail answers 500 on the second message, the run fails before posting,
/// and its retry (from the same high-water mark) digests both mails in one
/// post; the next run finds nothing new.
#[tokio::test]
async fn gmail_digest_digests_each_mail_once_across_a_failure() {
    let provider = Provider::start();
    let (google, slack) = (StandIn::google().await, StandIn::slack().await);
    let app = app_with_stand_ins(&provider, &google, &slack).await;
    let ada = app.user("ada").await;
    let script = deploy_connecting(&app, &ada, "gmail-digest").await;
    let component = roost_tests::example("gmail-digest");
    let (status, deployed) = app
        .deploy_with(
            &ada,
            json!({ "name": "gmail-digest", "component": support::b64(&component), "retries": { "max": 2 } }),
        )
        .await;
    assert_eq!(status, 201, "{deployed}");
    google.expect_token(&access_token(&app, &ada, "gmail", "GMAIL_ACCESS_TOKEN").await);
    slack.expect_token(&access_token(&app, &ada, "slack", "SLACK_ACCESS_TOKEN").await);

    google.fail_once("/gmail/v1/users/me/messages/m2");
    let (status, started) = app
        .send(
            Method::POST,
            &ada,
            &format!("/v1/scripts/{script}/run"),
            json!({ "handler": "digest" }),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let first = finished(&app, &ada, started["run_id"].as_str().unwrap()).await;
    assert_eq!(first["run"]["status"], "failed", "{first}");
    assert!(
        slack.requests().is_empty(),
        "nothing posted by the failed run"
    );

    let retry = finished_attempt(&app, &ada, &script, 2).await;
    assert_eq!(retry["run"]["status"], "succeeded", "{retry}");
    let posts = slack.requests();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let text = posts[0].json()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with("2 unread message(s):"), "{text}");

    let again = run_and_wait(&app, &ada, &script, json!({ "handler": "digest" })).await;
    assert_eq!(again["run"]["status"], "succeeded", "{again}");
    assert!(
        again["stdout"]
            .as_str()
            .unwrap()
            .contains("2 message(s) match `is:unread`, all digested before; nothing to post"),
        "{again}"
    );
    assert_eq!(slack.requests().len(), 1, "each mail digested once");
    let (_, mark) = app
        .get(
            &ada,
            &format!("/v1/scripts/{script}/state/high-water/gmail.internalDate"),
        )
        .await;
    assert_eq!(mark["entry"]["value"], 1764000600000i64, "{mark}");
}

/// The finished run of `script` at `attempt`.
async fn finished_attempt(app: &TestApp, token: &str, script: &str, attempt: i64) -> Value {
    for _ in 0..400 {
        let (_, page) = app
            .get(token, &format!("/v1/runs?script_id={script}&limit=20"))
            .await;
        let found = page["runs"].as_array().unwrap().iter().find(|r| {
            r["attempt"] == attempt && r["status"] != "queued" && r["status"] != "running"
        });
        if let Some(run) = found {
            return finished(app, token, run["id"].as_str().unwrap()).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no finished attempt {attempt}");
}

/// Shopify delivers a webhook again, under a new event id, when unsure it
/// arrived: order-alert alerts once per order.
#[tokio::test]
async fn order_alert_alerts_once_per_order() {
    let provider = Provider::start();
    let (google, slack) = (StandIn::google().await, StandIn::slack().await);
    let app = app_with_stand_ins(&provider, &google, &slack).await;
    let ada = app.user("ada").await;
    deploy_connecting(&app, &ada, "order-alert").await;
    slack.expect_token(&access_token(&app, &ada, "slack", "SLACK_ACCESS_TOKEN").await);

    let deliver = |event_id: &'static str, order: u64| {
        let (app, ada) = (&app, &ada);
        async move {
            let (status, accepted) = app
                .send(
                    Method::POST,
                    ada,
                    "/v1/events/shopify.orders.create",
                    json!({ "id": event_id, "payload": {
                        "id": order, "name": format!("#{order}"), "total_price": "25.00",
                        "currency": "EUR", "email": "grace@example.com"
                    } }),
                )
                .await;
            assert_eq!(status, 202, "{accepted}");
            let run = finished(app, ada, accepted["run_ids"][0].as_str().unwrap()).await;
            assert_eq!(run["run"]["status"], "succeeded", "{run}");
            let (_, logs) = app
                .get_text(
                    ada,
                    &format!("/v1/runs/{}/logs", run["run"]["id"].as_str().unwrap()),
                )
                .await;
            logs
        }
    };
    deliver("delivery-1", 1001).await;
    let logs = deliver("delivery-2", 1001).await;
    assert!(
        logs.contains("order #1001 was alerted on already; nothing to post"),
        "{logs}"
    );
    assert_eq!(slack.requests().len(), 1, "one alert for order 1001");
    deliver("delivery-3", 1002).await;
    let posts = slack.requests();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[1].json()["text"],
        "New order #1002: 25.00 EUR from grace@example.com"
    );
}

#[tokio::test]
async fn a_refused_token_is_a_typed_failure_of_the_run() {
    let provider = Provider::start();
    let (google, slack) = (StandIn::google().await, StandIn::slack().await);
    let app = app_with_stand_ins(&provider, &google, &slack).await;
    let ada = app.user("ada").await;
    let script = deploy_connecting(&app, &ada, "gmail-digest").await;
    // The APIs now want other tokens (as after the user revoked access).
    google.expect_token("a-token-roost-does-not-have");

    let run = run_and_wait(&app, &ada, &script, json!({ "handler": "digest" })).await;
    assert_eq!(run["run"]["status"], "failed", "{run}");
    let stderr = run["stderr"].as_str().unwrap();
    assert!(
        stderr.contains(
            "gmail: the credential was refused (401): Request had invalid authentication credentials.; reconnect gmail"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        slack.requests().is_empty(),
        "nothing posted after the failure"
    );
}

#[tokio::test]
async fn a_script_reaching_beyond_its_integrations_is_denied_and_the_run_says_so() {
    let provider = Provider::start();
    let (google, slack) = (StandIn::google().await, StandIn::slack().await);
    let app = app_with_stand_ins(&provider, &google, &slack).await;
    let ada = app.user("ada").await;
    // forbidden-egress declares no integration: neither a public host nor
    // the stand-in the server's own config opened for gmail is reachable.
    let (status, deployed) = app
        .deploy(&ada, "grabby", &roost_tests::example("forbidden-egress"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let script = deployed["script_id"].as_str().unwrap();
    for (url, host) in [
        ("https://example.com/", "example.com".to_string()),
        (
            &format!("{}/gmail/v1/users/me/messages", google.base) as &str,
            "127.0.0.1".to_string(),
        ),
    ] {
        let run = run_and_wait(&app, &ada, script, json!({ "payload": { "url": url } })).await;
        assert_eq!(run["run"]["status"], "failed", "{run}");
        assert_eq!(
            run["run"]["exit_code"], 10,
            "the SDK reported HttpError::Denied"
        );
        let error = run["run"]["error"].as_str().unwrap();
        assert!(
            error.contains(&format!(
                "outbound requests denied: {host} (host is not in the run's egress policy)"
            )),
            "{error}"
        );
    }
    assert!(
        google.requests().is_empty(),
        "the stand-in was never reached"
    );
}

#[tokio::test]
async fn the_http_client_adds_an_api_key_where_the_definition_places_it() {
    let sendgrid = StandIn::sendgrid().await;
    let base = sendgrid.base.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |config| {
        let settings = json!({ "baseUrl": base });
        config
            .integration_config
            .insert("sendgrid".into(), settings.as_object().unwrap().clone());
    })
    .await;
    let ada = app.user("ada").await;
    let (status, _) = app
        .send(
            Method::PUT,
            &ada,
            "/v1/credentials/sendgrid",
            json!({ "values": { "api_key": "SG.ada-key" } }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, deployed) = app
        .deploy(&ada, "welcome", &roost_tests::example("welcome-email"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    sendgrid.expect_token("SG.ada-key");

    let (_, accepted) = app
        .send(
            Method::POST,
            &ada,
            "/v1/events/user.signed_up",
            json!({ "payload": { "email": "grace@example.com", "name": "Grace" } }),
        )
        .await;
    let run = finished(&app, &ada, accepted["run_ids"][0].as_str().unwrap()).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    let calls = sendgrid.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/v3/mail/send");
    assert_eq!(calls[0].authorization.as_deref(), Some("Bearer SG.ada-key"));
    let mail = calls[0].json();
    assert_eq!(
        mail["personalizations"][0]["to"][0]["email"],
        "grace@example.com"
    );
    assert_eq!(mail["content"][0]["value"], "Hi Grace, welcome aboard.");

    // A refused key is a typed error naming the integration.
    sendgrid.expect_token("SG.another-key");
    let (_, accepted) = app
        .send(
            Method::POST,
            &ada,
            "/v1/events/user.signed_up",
            json!({ "payload": { "email": "alan@example.com" } }),
        )
        .await;
    let run = finished(&app, &ada, accepted["run_ids"][0].as_str().unwrap()).await;
    assert_eq!(run["run"]["status"], "failed", "{run}");
    let (_, logs) = app
        .get_text(
            &ada,
            &format!("/v1/runs/{}/logs", run["run"]["id"].as_str().unwrap()),
        )
        .await;
    assert!(
        logs.contains("sendgrid: not connected: the provider refused the stored `sendgrid` credential (401); store a new one at "),
        "{logs}"
    );
    assert!(
        logs.contains(
            "(the provider said: The provided authorization grant is invalid, expired, or revoked)"
        ),
        "{logs}"
    );
    // The run's error carries the setup link; the key reads as rejected,
    // and deploy offers a link to replace it.
    let error = run["run"]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{}/integrations/sendgrid/setup", app.base)),
        "{error}"
    );
    let (_, credentials) = app.get(&ada, "/v1/credentials").await;
    assert_eq!(
        credentials["credentials"][0]["integration"], "sendgrid",
        "{credentials}"
    );
    assert_eq!(
        credentials["credentials"][0]["status"], "rejected",
        "{credentials}"
    );
    let component = roost_tests::example("welcome-email");
    let (status, refused) = app.deploy(&ada, "welcome", &component).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(
        refused["error"]["details"]["missing"][0]["integration"],
        "sendgrid"
    );
    // A new key makes it whole again.
    let (status, _) = app
        .send(
            Method::PUT,
            &ada,
            "/v1/credentials/sendgrid",
            json!({ "values": { "api_key": "SG.another-key" } }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, deployed) = app.deploy(&ada, "welcome", &component).await;
    assert_eq!(status, 201, "{deployed}");
}

async fn notify_leaves_messages_in_the_senders_outbox(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let (status, deployed) = app
        .deploy(&ada, "notify", &roost_tests::example("notify"))
        .await;
    assert_eq!(status, 201, "messaging has nothing to connect: {deployed}");
    assert_eq!(
        deployed["metadata"]["integrations"],
        json!(["messaging"]),
        "{deployed}"
    );
    let script = deployed["script_id"].as_str().unwrap();

    let run = run_and_wait(
        &app,
        &ada,
        script,
        json!({ "payload": { "subject": "Backup", "body": "backup finished: 3 files", "channel": "ops" } }),
    )
    .await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    let run_id = run["run"]["id"].as_str().unwrap();

    let (status, outbox) = app.get(&ada, "/v1/messages").await;
    assert_eq!(status, 200);
    let messages = outbox["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{outbox}");
    let message = &messages[0];
    assert_eq!(message["body"], "backup finished: 3 files");
    assert_eq!(message["subject"], "Backup");
    assert_eq!(message["channel"], "ops");
    assert_eq!(message["to"], Value::Null);
    assert_eq!(message["script_id"], script);
    assert_eq!(message["run_id"], run_id);
    assert!(run["stdout"].as_str().unwrap().contains(&format!(
        "stored message {}",
        message["id"].as_str().unwrap()
    )));

    // A body over the limit is refused by roost, as a typed error in the
    // script, and nothing is stored.
    let huge = "x".repeat(roost::execute::MAX_MESSAGE_BYTES + 1);
    let run = run_and_wait(&app, &ada, script, json!({ "payload": { "body": huge } })).await;
    assert_eq!(run["run"]["status"], "failed", "{run}");
    assert!(
        run["stderr"]
            .as_str()
            .unwrap()
            .contains("messaging: refused (413): `body` takes at most 65536 bytes"),
        "{run}"
    );
    let (_, outbox) = app.get(&ada, "/v1/messages").await;
    assert_eq!(outbox["messages"].as_array().unwrap().len(), 1);

    // Paging and filters; Bob sees nothing of Ada's.
    let (_, filtered) = app
        .get(&ada, "/v1/messages?script_id=scr_other&limit=5")
        .await;
    assert_eq!(filtered["messages"], json!([]));
    let (status, bad) = app.get(&ada, "/v1/messages?limit=many").await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["code"], "invalid_query", "{bad}");
    let (_, theirs) = app.get(&bob, "/v1/messages").await;
    assert_eq!(theirs["messages"], json!([]));
    let (status, _) = app
        .client
        .get(format!("{}/v1/messages", app.base))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401);
}
on_both_stores!(notify_leaves_messages_in_the_senders_outbox);
