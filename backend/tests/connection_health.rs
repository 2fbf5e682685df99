//! Connection health: OAuth tokens are refreshed in the background before
//! they expire (no run needed), and a refresh token the provider refuses
//! turns the credential `reconnect_needed` and alerts the user once. The
//! provider is a real OAuth server (tests/oauth-mock).

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::oauth_provider::{Provider, connect};
use support::{Backend, TestApp};

/// A server whose background refresh looks every 200 ms and takes tokens
/// expiring within two hours (the provider's last one), with gmail's OAuth
/// client `client_id` at `provider`.
async fn spawn(provider: &Provider, client_id: &str) -> TestApp {
    let client = provider.client(client_id);
    TestApp::spawn_with(Backend::Sqlite, move |config| {
        config.refresh_ahead = Duration::from_secs(2 * 3600);
        config.refresh_ahead_every = Duration::from_millis(200);
        config.oauth_clients.insert("gmail".into(), client);
    })
    .await
}

/// Connects gmail for `token` through the provider.
async fn connect_gmail(app: &TestApp, token: &str) {
    let (status, link) = app
        .send(
            Method::POST,
            token,
            "/v1/integrations/gmail/setup_link",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{link}");
    connect(app, link["setup_url"].as_str().unwrap()).await;
}

async fn gmail_status(app: &TestApp, token: &str) -> Value {
    let (_, listed) = app.get(token, "/v1/credentials").await;
    listed["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["integration"] == "gmail")
        .map(|c| c["status"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_token_is_refreshed_before_it_expires_without_a_run() {
    let provider = Provider::start();
    let app = spawn(&provider, "gmail-client").await;
    let ada = app.user("ada").await;
    let before = provider.refreshes().await;
    connect_gmail(&app, &ada).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while provider.refreshes().await == before {
        assert!(Instant::now() < deadline, "no refresh ahead of use");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gmail_status(&app, &ada).await, "connected");
    let (_, runs) = app.get(&ada, "/v1/runs").await;
    assert_eq!(runs["runs"], json!([]), "no run asked for it");
}

#[tokio::test]
async fn a_refused_refresh_turns_reconnect_needed_and_alerts_once() {
    let provider = Provider::start();
    // The provider refuses every refresh of this client.
    let app = spawn(&provider, "gmail-revoking-client").await;
    let ada = app.user("ada").await;
    connect_gmail(&app, &ada).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while gmail_status(&app, &ada).await != "reconnect_needed" {
        assert!(
            Instant::now() < deadline,
            "the refusal was not found ahead of use"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alerts = || async {
        let (_, page) = app.get(&ada, "/v1/messages").await;
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["channel"] == "alerts")
            .cloned()
            .collect::<Vec<Value>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while alerts().await.is_empty() {
        assert!(Instant::now() < deadline, "no reconnect alert");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let told = alerts().await;
    assert_eq!(told.len(), 1, "told once: {told:#?}");
    let body = told[0]["body"].as_str().unwrap();
    assert!(
        body.contains("gmail needs reconnecting") && body.contains("/integrations/gmail/setup?"),
        "{body}"
    );
}

on_both_stores!(cron_ticks_wait_while_a_credential_needs_reconnecting);

/// With `pause_on_reconnect`, a script's cron ticks are held while a
/// credential it uses needs reconnecting, and resume once it is fixed.
async fn cron_ticks_wait_while_a_credential_needs_reconnecting(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let ada_id = app.user_id(&ada).await;
    let (status, _) = app
        .send(
            Method::PUT,
            &ada,
            "/v1/credentials/sendgrid",
            json!({ "values": { "api_key": "SG.ada-key" } }),
        )
        .await;
    assert_eq!(status, 200);
    let every_second = |name: &str, integrations: Value| {
        json!({
            "name": name,
            "component": support::b64(&support::bare_module()),
            "retries": { "max": 0 },
            "metadata": {
                "integrations": integrations,
                "triggers": [{ "name": "tick", "trigger": { "kind": "schedule", "cron": "* * * * * *" } }],
            },
        })
    };
    let (status, mailer) = app
        .deploy_with(&ada, every_second("mailer", json!(["sendgrid"])))
        .await;
    assert_eq!(status, 201, "{mailer}");
    let mailer = mailer["script_id"].as_str().unwrap().to_string();
    let (_, other) = app
        .deploy_with(&ada, every_second("other", json!([])))
        .await;
    let other = other["script_id"].as_str().unwrap().to_string();
    let (status, _) = app
        .send(
            Method::PUT,
            &ada,
            "/v1/alerts",
            json!({ "pause_on_reconnect": true }),
        )
        .await;
    assert_eq!(status, 200);
    let runs_of = |script: String| {
        let app = &app;
        let ada = ada.clone();
        async move {
            let (_, runs) = app
                .get(&ada, &format!("/v1/runs?script_id={script}&limit=200"))
                .await;
            runs["runs"].as_array().unwrap().len()
        }
    };
    let set = |status| {
        let store = app.store.clone();
        let user = ada_id.clone();
        async move {
            store
                .set_credential_status(&user, "sendgrid", status)
                .await
                .unwrap()
        }
    };
    set(roost::store::CredentialStatus::ReconnectNeeded).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (held_from, other_from) = (runs_of(mailer.clone()).await, runs_of(other.clone()).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        runs_of(mailer.clone()).await,
        held_from,
        "the mailer's ticks are held"
    );
    assert!(
        runs_of(other.clone()).await >= other_from + 2,
        "a script not using it ticks on"
    );
    set(roost::store::CredentialStatus::Connected).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        runs_of(mailer).await >= held_from + 2,
        "ticking again once reconnected"
    );
}
