//! A server whose gmail and slack APIs are local stand-ins, with OAuth
//! applications at the mock provider, and the steps the SDK tests share.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::oauth_provider::{Provider, connect};
use super::stand_in::StandIn;
use super::{Backend, TestApp};

/// A server whose gmail and slack APIs are the stand-ins, with OAuth
/// applications at the mock provider.
pub async fn app_with_stand_ins(provider: &Provider, google: &StandIn, slack: &StandIn) -> TestApp {
    app_with(provider, google, slack, false).await
}

/// The same, optionally with gmail and slack redefined as host-only
/// (`credentialDelivery: host`).
pub async fn app_with(
    provider: &Provider,
    google: &StandIn,
    slack: &StandIn,
    host_only: bool,
) -> TestApp {
    app_with_gmail_client(provider, google, slack, host_only, "gmail-client").await
}

/// `app_with`, with gmail's OAuth client id at the provider (an id with
/// `revoking` in it has every refresh refused).
pub async fn app_with_gmail_client(
    provider: &Provider,
    google: &StandIn,
    slack: &StandIn,
    host_only: bool,
    gmail_client: &str,
) -> TestApp {
    let (gmail_client, slack_client) = (
        provider.client(gmail_client),
        provider.client("slack-client"),
    );
    let (google_base, slack_base) = (google.base.clone(), slack.base.clone());
    let definitions = host_only.then(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        for id in ["gmail", "slack"] {
            let builtin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("integrations/{id}.json"));
            let mut definition: Value =
                serde_json::from_str(&std::fs::read_to_string(builtin).unwrap()).unwrap();
            definition["credentialDelivery"] = json!("host");
            std::fs::write(dir.join(format!("{id}.json")), definition.to_string()).unwrap();
        }
        dir
    });
    TestApp::spawn_with(Backend::Sqlite, move |config| {
        config.integrations_dir = definitions;
        config.oauth_clients.insert("gmail".into(), gmail_client);
        config.oauth_clients.insert("slack".into(), slack_client);
        for (id, base) in [("gmail", google_base), ("slack", slack_base)] {
            let settings = json!({ "baseUrl": base });
            config
                .integration_config
                .insert(id.into(), settings.as_object().unwrap().clone());
        }
    })
    .await
}

/// Deploys `example`: the first attempt is refused with a setup URL per
/// missing integration; each is connected through the OAuth flow, then the
/// deploy succeeds. Returns the script id.
pub async fn deploy_connecting(app: &TestApp, token: &str, example: &str) -> String {
    let component = roost_tests::example(example);
    let (status, refused) = app.deploy(token, example, &component).await;
    assert_eq!(status, 409, "{refused}");
    for missing in refused["error"]["details"]["missing"].as_array().unwrap() {
        connect(app, missing["setup_url"].as_str().unwrap()).await;
    }
    let (status, deployed) = app.deploy(token, example, &component).await;
    assert_eq!(status, 201, "{deployed}");
    deployed["script_id"].as_str().unwrap().to_string()
}

/// The access token roost holds for `integration`, as a run would get it.
pub async fn access_token(app: &TestApp, token: &str, integration: &str, var: &str) -> String {
    let user = app.user_id(token).await;
    let env = app
        .oauth
        .env_for_run(&user, &app.registry, &[integration.to_string()])
        .await
        .unwrap();
    env[var].clone()
}

pub async fn run_and_wait(app: &TestApp, token: &str, script: &str, body: Value) -> Value {
    let (status, run) = app
        .send(
            Method::POST,
            token,
            &format!("/v1/scripts/{script}/run?wait=true"),
            body,
        )
        .await;
    assert_eq!(status, 200, "{run}");
    run
}

pub async fn finished(app: &TestApp, token: &str, run_id: &str) -> Value {
    for _ in 0..400 {
        let (_, run) = app.get(token, &format!("/v1/runs/{run_id}")).await;
        let status = run["run"]["status"].as_str().unwrap().to_string();
        if status != "queued" && status != "running" {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {run_id} did not finish");
}
