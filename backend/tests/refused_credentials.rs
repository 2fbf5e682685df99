//! A provider that refuses a stored OAuth token (401) while it has not
//! expired, as after the user revoked roost's access: the script's own call
//! through the SDK has roost refresh the token once and try again; when the
//! provider refuses the refresh too, the credential turns
//! `reconnect_needed` and the run, the credential list and deploy all hand
//! the user the link to connect again.

mod support;

use serde_json::json;
use support::oauth_provider::Provider;
use support::sdk_app::{
    access_token, app_with_gmail_client, app_with_stand_ins, deploy_connecting, run_and_wait,
};
use support::stand_in::StandIn;

/// gmail's status as `GET /v1/credentials` shows it.
async fn gmail_status(app: &support::TestApp, token: &str) -> String {
    let (_, credentials) = app.get(token, "/v1/credentials").await;
    credentials["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["integration"] == "gmail")
        .and_then(|c| c["status"].as_str())
        .unwrap_or("not listed")
        .to_string()
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_and_the_script_carries_on() {
    let provider = Provider::start();
    let (google, slack) = (StandIn::google().await, StandIn::slack().await);
    let app = app_with_stand_ins(&provider, &google, &slack).await;
    let ada = app.user("ada").await;
    let script = deploy_connecting(&app, &ada, "gmail-digest").await;
    let revoked = access_token(&app, &ada, "gmail", "GMAIL_ACCESS_TOKEN").await;
    google.refuse_token(&revoked);
    slack.expect_token(&access_token(&app, &ada, "slack", "SLACK_ACCESS_TOKEN").await);

    let before = provider.refreshes().await;
    let run = run_and_wait(&app, &ada, &script, json!({ "handler": "digest" })).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    assert_eq!(provider.refreshes().await, before + 1, "one refresh");
    let renewed = access_token(&app, &ada, "gmail", "GMAIL_ACCESS_TOKEN").await;
    assert_ne!(renewed, revoked);
    let sent: Vec<String> = google
        .requests()
        .iter()
        .filter_map(|r| r.authorization.clone())
        .collect();
    assert_eq!(sent[0], format!("Bearer {revoked}"), "{sent:?}");
    assert!(
        sent[1..].iter().all(|a| *a == format!("Bearer {renewed}")),
        "every request after the refusal used the new token: {sent:?}"
    );
    // The new token is a secret of the run like the old one.
    for stream in ["stdout", "stderr"] {
        assert!(!run[stream].as_str().unwrap().contains(&renewed), "{run}");
    }
    assert_eq!(gmail_status(&app, &ada).await, "connected");
}

#[tokio::test]
async fn a_token_that_cannot_be_refreshed_asks_the_user_to_connect_again() {
    let provider = Provider::start();
    let (google, slack) = (StandIn::google().await, StandIn::slack().await);
    // This OAuth client has every refresh refused with invalid_grant.
    let app =
        app_with_gmail_client(&provider, &google, &slack, false, "gmail-revoking-client").await;
    let ada = app.user("ada").await;
    let script = deploy_connecting(&app, &ada, "gmail-digest").await;
    google.refuse_token(&access_token(&app, &ada, "gmail", "GMAIL_ACCESS_TOKEN").await);
    slack.expect_token(&access_token(&app, &ada, "slack", "SLACK_ACCESS_TOKEN").await);

    let run = run_and_wait(&app, &ada, &script, json!({ "handler": "digest" })).await;
    assert_eq!(run["run"]["status"], "failed", "{run}");
    let setup = format!("{}/integrations/gmail/setup", app.base);
    let error = run["run"]["error"].as_str().unwrap();
    assert!(
        error.contains(&setup),
        "the run's error has the link: {error}"
    );
    let stderr = run["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("gmail: not connected: `gmail` must be connected again"),
        "{stderr}"
    );
    assert!(stderr.contains(&setup), "{stderr}");
    assert!(
        slack.requests().is_empty(),
        "nothing posted after the failure"
    );

    assert_eq!(gmail_status(&app, &ada).await, "reconnect_needed");
    let (_, audit) = app.get(&ada, "/v1/audit").await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "credential.refused" && e["integration"] == "gmail"),
        "{audit}"
    );

    // Deploy offers the way back, and taking it makes the script whole.
    let component = roost_tests::example("gmail-digest");
    let (status, refused) = app.deploy(&ada, "gmail-digest", &component).await;
    assert_eq!(status, 409, "{refused}");
    let missing = &refused["error"]["details"]["missing"];
    assert_eq!(missing[0]["integration"], "gmail", "{refused}");
    support::oauth_provider::connect(&app, missing[0]["setup_url"].as_str().unwrap()).await;
    google.expect_token(&access_token(&app, &ada, "gmail", "GMAIL_ACCESS_TOKEN").await);
    let run = run_and_wait(&app, &ada, &script, json!({ "handler": "digest" })).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
}

/// A script that asks for gmail's refresh token gets it (and deploy says
/// so); see `host_calls.rs` for one that does not ask.
#[tokio::test]
async fn a_script_that_asks_for_the_refresh_token_gets_it_and_is_told() {
    let provider = Provider::start();
    let (google, slack) = (StandIn::google().await, StandIn::slack().await);
    let app = app_with_stand_ins(&provider, &google, &slack).await;
    let ada = app.user("ada").await;
    let script = deploy_connecting(&app, &ada, "refresh-reader").await;
    let component = roost_tests::example("refresh-reader");
    let (status, deployed) = app.deploy(&ada, "refresh-reader", &component).await;
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["metadata"]["refresh_tokens"], json!(["gmail"]));
    let notice = deployed["notices"][0].as_str().unwrap_or_default();
    assert!(notice.contains("`gmail`'s refresh token"), "{deployed}");
    let run = run_and_wait(&app, &ada, &script, json!({})).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    assert!(
        run["stdout"]
            .as_str()
            .unwrap()
            .contains("gmail variables: GMAIL_ACCESS_TOKEN, GMAIL_REFRESH_TOKEN"),
        "{run}"
    );
}
