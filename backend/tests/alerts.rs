//! Alerts: a run that fails for good, or a credential to reconnect, reaches
//! the user in the outbox, on Slack, by email (SendGrid) and at a signed
//! webhook, each against a stand-in; repeats are grouped per script per
//! window, so a script failing every second sends a few messages, with
//! the count of every failure.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use hmac::Mac as _;
use reqwest::Method;
use serde_json::{Value, json};
use support::oauth_provider::{Provider, connect};
use support::stand_in::StandIn;
use support::{Backend, TestApp};

/// The outbox's alerts, oldest first.
async fn outbox_alerts(app: &TestApp, token: &str) -> Vec<Value> {
    let (_, page) = app.get(token, "/v1/messages?limit=200").await;
    let mut alerts: Vec<Value> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["channel"] == "alerts")
        .cloned()
        .collect();
    alerts.reverse();
    alerts
}

/// Waits until `check` holds, for at most `secs`.
async fn eventually<F: std::future::Future<Output = bool>>(
    secs: u64,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "not within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deploys `example` as `name` with no retries (a failure is final).
async fn deploy_once(app: &TestApp, token: &str, name: &str, example: &str) -> String {
    let body = json!({
        "name": name,
        "component": support::b64(&roost_tests::example(example)),
        "retries": { "max": 0 },
    });
    let (status, deployed) = app.deploy_with(token, body).await;
    assert_eq!(status, 201, "{deployed}");
    deployed["script_id"].as_str().unwrap().to_string()
}

on_both_stores!(a_script_failing_every_second_sends_a_few_grouped_alerts);

async fn a_script_failing_every_second_sends_a_few_grouped_alerts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let (status, body) = app
        .send(Method::PUT, &ada, "/v1/alerts", json!({ "window_secs": 2 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let script = deploy_once(&app, &ada, "sync", "upstream-down").await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (status, _) = app
        .send(
            Method::PATCH,
            &ada,
            &format!("/v1/scripts/{script}/schedules/sync"),
            json!({ "paused": true }),
        )
        .await;
    assert_eq!(status, 200);
    // Every failure is counted, and the last window's summary is sent.
    let failed = || async {
        let (_, runs) = app
            .get(
                &ada,
                &format!("/v1/runs?script_id={script}&status=failed&limit=200"),
            )
            .await;
        runs["runs"].as_array().unwrap().len() as i64
    };
    let counted = || async {
        let (_, view) = app.get(&ada, "/v1/alerts").await;
        let groups = view["recent"].as_array().unwrap().clone();
        let counted: i64 = groups.iter().map(|g| g["count"].as_i64().unwrap()).sum();
        let unsent = groups.iter().any(|g| g["summary_sent_at"].is_null());
        (counted, unsent, groups.len())
    };
    eventually(20, || async {
        let (counted, unsent, _) = counted().await;
        counted == failed().await && !unsent
    })
    .await;
    let failures = failed().await;
    let (_, _, windows) = counted().await;
    assert!(failures >= 5, "the cron ran: {failures}");
    let alerts = outbox_alerts(&app, &ada).await;
    let told: i64 = alerts
        .iter()
        .map(|a| count_in(a["body"].as_str().unwrap()))
        .sum();
    assert_eq!(told, failures, "every failure told once: {alerts:#?}");
    assert!(
        alerts.len() <= windows + 1 && (alerts.len() as i64) < failures,
        "{} messages for {failures} failures in {windows} windows",
        alerts.len()
    );
    let first = alerts[0]["body"].as_str().unwrap();
    assert!(
        first.contains("`sync` failed") && first.contains("/runs/run_"),
        "{first}"
    );
    assert!(
        alerts
            .iter()
            .any(|a| a["body"].as_str().unwrap().contains("more time(s)")),
        "{alerts:#?}"
    );
}

/// How many failures one alert tells of: 1, or a summary's count.
fn count_in(body: &str) -> i64 {
    body.split_once(" more time(s)")
        .and_then(|(head, _)| head.rsplit(' ').next())
        .map_or(1, |n| n.parse().unwrap())
}

/// A webhook receiver recording what it is sent, with its headers.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    async fn start() -> (Self, String) {
        let receiver = Self::default();
        let got = receiver.got.clone();
        let app = axum::Router::new().route(
            "/hooks/roost",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let got = got.clone();
                async move {
                    got.lock().unwrap().push((headers, body));
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/roost", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn deliveries(&self) -> Vec<(HeaderMap, Bytes)> {
        self.got.lock().unwrap().clone()
    }
}

/// Whether `headers` sign `body` with `secret` as roost says it does.
fn signed(headers: &HeaderMap, body: &[u8], secret: &str) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.", header("x-roost-timestamp")).as_bytes());
    mac.update(body);
    header("x-roost-signature") == format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_failure_reaches_every_channel_and_an_override_silences_a_script() {
    let provider = Provider::start();
    let (slack, sendgrid) = (StandIn::slack().await, StandIn::sendgrid().await);
    let (receiver, hook_url) = Receiver::start().await;
    let slack_client = provider.client("slack-client");
    let (slack_base, sendgrid_base) = (slack.base.clone(), sendgrid.base.clone());
    let app = TestApp::spawn_with(Backend::Sqlite, move |config| {
        config.alert_webhooks_private = true;
        config.oauth_clients.insert("slack".into(), slack_client);
        for (id, base) in [("slack", slack_base), ("sendgrid", sendgrid_base)] {
            let settings = json!({ "baseUrl": base });
            config
                .integration_config
                .insert(id.into(), settings.as_object().unwrap().clone());
        }
    })
    .await;
    let ada = app.user("ada").await;
    // Slack through its OAuth flow, SendGrid with a key.
    let (status, link) = app
        .send(
            Method::POST,
            &ada,
            "/v1/integrations/slack/setup_link",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{link}");
    connect(&app, link["setup_url"].as_str().unwrap()).await;
    slack.expect_token(
        &support::sdk_app::access_token(&app, &ada, "slack", "SLACK_ACCESS_TOKEN").await,
    );
    let (status, _) = app
        .send(
            Method::PUT,
            &ada,
            "/v1/credentials/sendgrid",
            json!({ "values": { "api_key": "SG.ada-key" } }),
        )
        .await;
    assert_eq!(status, 200);
    sendgrid.expect_token("SG.ada-key");
    let settings = json!({
        "channels": ["outbox", "slack", "email", "webhook"],
        "slack_channel": "#ops",
        "email_to": "ada@example.com",
        "email_from": "roost@example.com",
        "webhook_url": hook_url,
        "window_secs": 60,
    });
    let (status, body) = app.send(Method::PUT, &ada, "/v1/alerts", settings).await;
    assert_eq!(status, 200, "{body}");
    let (_, view) = app.get(&ada, "/v1/alerts").await;
    let secret = view["webhook_secret"].as_str().unwrap().to_string();

    let probe = deploy_once(&app, &ada, "probe", "state-probe").await;
    let quiet = deploy_once(&app, &ada, "quiet", "state-probe").await;
    let (status, _) = app
        .send(
            Method::PUT,
            &ada,
            &format!("/v1/scripts/{quiet}/alerts"),
            json!({ "enabled": false }),
        )
        .await;
    assert_eq!(status, 200);
    let fail = json!({ "payload": { "steps": [{ "fail": "the ledger is locked" }] } });
    for script in [&quiet, &probe] {
        let (status, run) = app
            .send(
                Method::POST,
                &ada,
                &format!("/v1/scripts/{script}/run?wait=true"),
                fail.clone(),
            )
            .await;
        assert_eq!(
            (status, run["run"]["status"].clone()),
            (200, json!("failed")),
            "{run}"
        );
    }
    eventually(15, || async { !receiver.deliveries().is_empty() }).await;

    let posted = slack.requests();
    assert_eq!(posted.len(), 1, "{posted:?}");
    let message = posted[0].json();
    assert_eq!(message["channel"], "#ops");
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains("`probe` failed") && text.contains("/runs/run_"),
        "{text}"
    );
    let mail = sendgrid.requests();
    assert_eq!(mail.len(), 1);
    let mail = mail[0].json();
    assert_eq!(
        mail["personalizations"][0]["to"][0]["email"],
        "ada@example.com"
    );
    assert!(
        mail["subject"].as_str().unwrap().contains("probe"),
        "{mail}"
    );
    let delivered = receiver.deliveries();
    assert_eq!(delivered.len(), 1);
    let (headers, body) = &delivered[0];
    assert!(signed(headers, body, &secret), "the signature checks");
    assert!(
        !signed(headers, body, "another-secret"),
        "and only with the secret"
    );
    let hook: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        (
            hook["kind"].clone(),
            hook["script_id"].clone(),
            hook["count"].clone()
        ),
        (json!("run_failed"), json!(probe), json!(1))
    );
    let outbox = outbox_alerts(&app, &ada).await;
    assert_eq!(
        outbox.len(),
        1,
        "the silenced script told nothing: {outbox:#?}"
    );

    // A second failure in the window waits for its summary.
    app.send(
        Method::POST,
        &ada,
        &format!("/v1/scripts/{probe}/run?wait=true"),
        fail,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(slack.requests().len(), 1);
    assert_eq!(receiver.deliveries().len(), 1);
}

on_both_stores!(a_credential_to_reconnect_is_told_once_with_its_setup_link);

async fn a_credential_to_reconnect_is_told_once_with_its_setup_link(backend: Backend) {
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
    let refused = || async {
        app.store
            .set_credential_status(
                &ada_id,
                "sendgrid",
                roost::store::CredentialStatus::ReconnectNeeded,
            )
            .await
            .unwrap()
    };
    refused().await;
    eventually(10, || async { outbox_alerts(&app, &ada).await.len() == 1 }).await;
    let alert = outbox_alerts(&app, &ada).await.remove(0);
    let body = alert["body"].as_str().unwrap();
    assert!(
        body.contains("sendgrid needs reconnecting")
            && body.contains("/integrations/sendgrid/setup?"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(outbox_alerts(&app, &ada).await.len(), 1, "told once");
    // Fixed, then refused again: told again.
    app.store
        .set_credential_status(
            &ada_id,
            "sendgrid",
            roost::store::CredentialStatus::Connected,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    refused().await;
    eventually(10, || async { outbox_alerts(&app, &ada).await.len() == 2 }).await;
}

on_both_stores!(alert_settings_that_cannot_be_delivered_are_refused);

async fn alert_settings_that_cannot_be_delivered_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    for (settings, status, code) in [
        (
            json!({ "channels": ["pager"] }),
            400,
            "invalid_alert_settings",
        ),
        (
            json!({ "channels": ["slack"] }),
            400,
            "invalid_alert_settings",
        ),
        (
            json!({ "channels": ["email"], "email_to": "ada@example.com" }),
            400,
            "invalid_alert_settings",
        ),
        (
            json!({ "channels": ["webhook"] }),
            400,
            "invalid_alert_settings",
        ),
        (
            json!({ "webhook_url": "ftp://example.com/x" }),
            400,
            "invalid_alert_settings",
        ),
        // The server's own network is not a place alerts go.
        (
            json!({ "webhook_url": "http://127.0.0.1:9/x" }),
            400,
            "invalid_alert_settings",
        ),
        (
            json!({ "webhook_url": "http://169.254.169.254/latest" }),
            400,
            "invalid_alert_settings",
        ),
        (json!({ "window_secs": 0 }), 400, "invalid_alert_settings"),
        (json!({ "channel": "outbox" }), 422, "invalid_body"),
    ] {
        let (got, body) = app
            .send(Method::PUT, &ada, "/v1/alerts", settings.clone())
            .await;
        assert_eq!(got, status, "{settings}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    let (_, view) = app.get(&ada, "/v1/alerts").await;
    assert_eq!(
        view["default"]["channels"],
        json!(["outbox"]),
        "nothing changed: {view}"
    );
    let (status, _) = app
        .send(
            Method::PUT,
            &ada,
            "/v1/scripts/scr_nope/alerts",
            json!({ "enabled": false }),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .send(
            Method::DELETE,
            &ada,
            "/v1/scripts/scr_nope/alerts",
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
}
