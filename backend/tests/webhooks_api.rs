//! Slack Events API webhooks through the real server: the URL check, a
//! verified event reaching its subscribers once, and forged or stale
//! requests refused without enqueuing anything.

mod support;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use support::oauth_provider::Provider;
use support::{Backend, TestApp};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn sign(ts: &str, body: &str, secret: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

async fn post(
    app: &TestApp,
    user_id: &str,
    body: &str,
    ts: &str,
    signature: &str,
) -> (u16, serde_json::Value) {
    let response = app
        .client
        .post(format!("{}/webhooks/slack/{user_id}", app.base))
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", signature)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// A server with roost's Slack app: its signing secret, and its OAuth
/// client at the mock provider (whose Slack answers name workspace
/// `T0TEST` and app `A0TEST`).
async fn app_with_slack(backend: Backend, provider: &Provider) -> TestApp {
    let client = provider.client("slack-client");
    TestApp::spawn_with(backend, move |config| {
        config.webhook_secrets.insert("slack".into(), SECRET.into());
        config.oauth_clients.insert("slack".into(), client);
    })
    .await
}

/// Connects Slack for `token`'s user through the OAuth flow.
async fn connect_slack(app: &TestApp, token: &str) {
    let (status, body) = app
        .deploy_with(token, json!({
            "name": "needs-slack",
            "component": support::b64(&support::bare_module()),
            "metadata": { "integrations": ["slack"], "triggers": [{ "name": "run", "trigger": { "kind": "manual" } }] },
        }))
        .await;
    assert_eq!(status, 409, "{body}");
    let setup = body["error"]["details"]["missing"][0]["setup_url"]
        .as_str()
        .unwrap();
    support::oauth_provider::connect(app, setup).await;
}

async fn slack_events_are_verified_and_run_once(backend: Backend) {
    let provider = Provider::start();
    let app = app_with_slack(backend, &provider).await;
    let token = app.user("ada").await;
    let user_id = app.user_id(&token).await;
    connect_slack(&app, &token).await;
    let (status, _) = app
        .deploy_with(&token, json!({
            "name": "on-message",
            "component": support::b64(&support::bare_module()),
            "metadata": { "integrations": [], "triggers": [{ "name": "on_message", "trigger": { "kind": "event", "name": "slack.message" } }] },
        }))
        .await;
    assert_eq!(status, 201);
    let now = (roost::store::now_millis() / 1000).to_string();

    let challenge = r#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let (status, body) = post(
        &app,
        &user_id,
        challenge,
        &now,
        &sign(&now, challenge, SECRET),
    )
    .await;
    assert_eq!(
        (status, body["challenge"].as_str()),
        (
            200,
            Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
        )
    );

    let event = r#"{"type":"event_callback","team_id":"T0TEST","api_app_id":"A0TEST","event_id":"Ev123","event":{"type":"message","channel":"C1","text":"hi"}}"#;
    let (status, body) = post(&app, &user_id, event, &now, &sign(&now, event, SECRET)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["run_ids"].as_array().unwrap().len(), 1);
    // Slack retries deliveries: the same event id runs once.
    let (_, again) = post(&app, &user_id, event, &now, &sign(&now, event, SECRET)).await;
    assert_eq!(
        (again["duplicate"].as_bool(), &again["run_ids"]),
        (Some(true), &body["run_ids"])
    );

    let other = r#"{"type":"event_callback","event_id":"Ev124","event":{"type":"message","text":"forged"}}"#;
    let stale = (roost::store::now_millis() / 1000 - 600).to_string();
    for (ts, signature) in [
        (now.clone(), sign(&now, other, "wrong-secret")),
        (now.clone(), sign(&now, event, SECRET)),
        (stale.clone(), sign(&stale, other, SECRET)),
        (now.clone(), String::new()),
    ] {
        let (status, body) = post(&app, &user_id, other, &ts, &signature).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_signature")),
            "{body}"
        );
    }
    let (_, runs) = app.get(&token, "/v1/runs").await;
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "refused requests enqueue nothing");
    assert_eq!(runs[0]["trigger_spec"], "slack.message");
    assert_eq!(runs[0]["payload"]["text"], "hi");
}
on_both_stores!(slack_events_are_verified_and_run_once);

/// The signing secret is the app's, shared by every user: a delivery signed
/// for one user's URL is refused at another's (replayed, or from a
/// workspace that user did not connect), and event types are checked.
async fn a_slack_delivery_runs_only_the_connected_users_handlers(backend: Backend) {
    let provider = Provider::start();
    let app = app_with_slack(backend, &provider).await;
    let now = (roost::store::now_millis() / 1000).to_string();
    let mut users = Vec::new();
    for name in ["ada", "bob", "carol"] {
        let token = app.user(name).await;
        let (status, body) = app
            .deploy_with(&token, json!({
                "name": "on-message",
                "component": support::b64(&support::bare_module()),
                "metadata": { "integrations": [], "triggers": [{ "name": "on_message", "trigger": { "kind": "event", "name": "slack.message" } }] },
            }))
            .await;
        assert_eq!(status, 201, "{body}");
        let id = app.user_id(&token).await;
        users.push((token, id));
    }
    // Ada and Bob connected Slack (the mock's one workspace); Carol did not.
    connect_slack(&app, &users[0].0).await;
    connect_slack(&app, &users[1].0).await;
    let (ada, bob, carol) = (&users[0].1, &users[1].1, &users[2].1);

    let event = r#"{"type":"event_callback","team_id":"T0TEST","api_app_id":"A0TEST","event_id":"EvA1","event":{"type":"message","text":"for ada"}}"#;
    let signature = sign(&now, event, SECRET);
    let (status, body) = post(&app, ada, event, &now, &signature).await;
    assert_eq!(status, 200, "{body}");
    // The same bytes at Bob's URL, and at Carol's.
    let (status, body) = post(&app, bob, event, &now, &signature).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("delivery_replayed")),
        "{body}"
    );
    let (status, body) = post(&app, carol, event, &now, &signature).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_connected")),
        "{body}"
    );
    // Another workspace, or another app, signed with roost's secret.
    for other in [
        r#"{"type":"event_callback","team_id":"T0OTHER","api_app_id":"A0TEST","event_id":"EvB1","event":{"type":"message"}}"#,
        r#"{"type":"event_callback","team_id":"T0TEST","api_app_id":"A0OTHER","event_id":"EvB2","event":{"type":"message"}}"#,
    ] {
        let (status, body) = post(&app, bob, other, &now, &sign(&now, other, SECRET)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("account_mismatch")),
            "{body}"
        );
    }
    let odd = format!(
        r#"{{"type":"event_callback","team_id":"T0TEST","api_app_id":"A0TEST","event_id":"EvC1","event":{{"type":"../../x <b>{}"}}}}"#,
        "y".repeat(280)
    );
    let (status, body) = post(&app, ada, &odd, &now, &sign(&now, &odd, SECRET)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_event_type")),
        "{body}"
    );

    let runs_of = |token: String| {
        let app = &app;
        async move {
            let (_, runs) = app.get(&token, "/v1/runs").await;
            runs["runs"].as_array().unwrap().len()
        }
    };
    assert_eq!(runs_of(users[0].0.clone()).await, 1);
    assert_eq!(runs_of(users[1].0.clone()).await, 0);
    assert_eq!(runs_of(users[2].0.clone()).await, 0);
}
on_both_stores!(a_slack_delivery_runs_only_the_connected_users_handlers);

#[tokio::test]
async fn without_a_signing_secret_the_webhook_is_off() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, body) = post(&app, "usr_x", "{}", "0", "v0=00").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("not_configured"))
    );
}
