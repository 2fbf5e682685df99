//! Setup links and the OAuth flow against a real OAuth 2.0 server
//! (the `oauth2-mock-server` npm package, started here on a loopback port):
//! the happy path to a stored, decryptable token and a redeploy; state
//! reuse, expiry and mismatch; PKCE mismatch; refresh near expiry with a
//! single flight; `invalid_grant`; Slack's response shapes; forged links and
//! the API-key form.

mod support;

use std::time::Duration;

use roost::oauth::OAuthError;
use serde_json::{Value, json};
use support::oauth_provider::Provider;
use support::{Backend, TestApp, b64, bare_module};

async fn app_with(provider: &Provider, gmail_client: &str, refresh_window: Duration) -> TestApp {
    let gmail = provider.client(gmail_client);
    let slack = provider.client(if gmail_client.contains("revoking") {
        "slack-revoking-client"
    } else {
        "slack-client"
    });
    TestApp::spawn_with(Backend::Sqlite, move |config| {
        config.oauth_clients.insert("gmail".into(), gmail);
        config.oauth_clients.insert("slack".into(), slack);
        config.refresh_window = refresh_window;
    })
    .await
}

/// Deploys a script that needs `integration`; returns the 409's setup URL.
async fn setup_url(app: &TestApp, token: &str, integration: &str) -> String {
    let (status, body) = app
        .deploy_with(token, json!({
            "name": "needs-it",
            "component": b64(&bare_module()),
            "metadata": { "integrations": [integration], "triggers": [{ "name": "run", "trigger": { "kind": "manual" } }] },
        }))
        .await;
    assert_eq!(status, 409, "{body}");
    body["error"]["details"]["missing"][0]["setup_url"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn redeploy_status(app: &TestApp, token: &str, integration: &str) -> u16 {
    app.deploy_with(token, json!({
        "name": "needs-it",
        "component": b64(&bare_module()),
        "metadata": { "integrations": [integration], "triggers": [{ "name": "run", "trigger": { "kind": "manual" } }] },
    }))
    .await
    .0
}

fn location(response: &reqwest::Response) -> String {
    assert!(
        response.status().is_redirection(),
        "expected a redirect, got {}",
        response.status()
    );
    response.headers()["location"].to_str().unwrap().to_string()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Follows a setup URL like a browser up to our callback; returns the
/// callback URL (not yet visited).
async fn authorize(app: &TestApp, setup_url: &str) -> String {
    let to_provider = location(&app.client.get(setup_url).send().await.unwrap());
    location(&app.client.get(&to_provider).send().await.unwrap())
}

async fn visit(app: &TestApp, url: &str) -> (u16, String) {
    let response = app.client.get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn happy_path_stores_a_decryptable_token_and_redeploys() {
    let provider = Provider::start();
    let app = app_with(&provider, "gmail-client", Duration::from_secs(300)).await;
    let token = app.user("ada").await;
    let setup = setup_url(&app, &token, "gmail").await;

    let to_provider = location(&app.client.get(&setup).send().await.unwrap());
    assert!(
        to_provider.starts_with(&format!("http://127.0.0.1:{}/authorize?", provider.port)),
        "{to_provider}"
    );
    assert_eq!(
        query_param(&to_provider, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query_param(&to_provider, "code_challenge").is_some());
    assert_eq!(
        query_param(&to_provider, "access_type").as_deref(),
        Some("offline")
    );
    assert_eq!(
        query_param(&to_provider, "prompt").as_deref(),
        Some("consent")
    );
    assert_eq!(
        query_param(&to_provider, "client_id").as_deref(),
        Some("gmail-client")
    );
    assert!(
        query_param(&to_provider, "scope")
            .unwrap()
            .contains("https://www.googleapis.com/auth/gmail.send")
    );
    assert_eq!(
        query_param(&to_provider, "redirect_uri"),
        Some(format!("{}/oauth/callback", app.base))
    );

    let callback = location(&app.client.get(&to_provider).send().await.unwrap());
    let (status, page) = visit(&app, &callback).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Gmail connected") && page.contains("Deploy your script again"));

    let user_id = app.user_id(&token).await;
    let env = app
        .oauth
        .env_for_run(&user_id, &app.registry, &["gmail".into()])
        .await
        .unwrap();
    assert!(
        env["GMAIL_ACCESS_TOKEN"].len() > 20,
        "an access token from the provider"
    );
    assert!(!env["GMAIL_REFRESH_TOKEN"].is_empty());
    let (_, connected) = app.get(&token, "/v1/credentials").await;
    assert_eq!(
        connected["credentials"][0]["keys"],
        json!(["access_token", "refresh_token"])
    );
    assert_eq!(connected["credentials"][0]["status"], "connected");
    assert!(!connected.to_string().contains(&env["GMAIL_ACCESS_TOKEN"]));
    assert_eq!(redeploy_status(&app, &token, "gmail").await, 201);

    // The state is single use: replaying the callback changes nothing.
    let (status, page) = visit(&app, &callback).await;
    assert_eq!(status, 400);
    assert!(page.contains("already used"), "{page}");
    // And the setup link is spent: it cannot start another connection
    // (someone else's Google account) into Ada's roost account.
    let (status, page) = visit(&app, &setup).await;
    assert_eq!(status, 410, "{page}");
}

#[tokio::test]
async fn expired_mismatched_and_declined_authorizations_store_nothing() {
    let provider = Provider::start();
    let app = app_with(&provider, "gmail-client", Duration::from_secs(300)).await;
    let token = app.user("ada").await;
    let setup = setup_url(&app, &token, "gmail").await;

    // Unknown state.
    let (status, page) = visit(
        &app,
        &format!("{}/oauth/callback?state=forged&code=abc", app.base),
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("unknown"), "{page}");

    // Expired state: age the pending authorization past its lifetime.
    let callback = authorize(&app, &setup).await;
    let pool = sqlx::SqlitePool::connect(&roost::config::sqlite_url(app.dir.path()))
        .await
        .unwrap();
    sqlx::query("UPDATE oauth_states SET expires_at = 0")
        .execute(&pool)
        .await
        .unwrap();
    let (status, page) = visit(&app, &callback).await;
    assert_eq!(status, 400);
    assert!(page.contains("expired"), "{page}");

    // The person declines at the provider.
    let callback = authorize(&app, &setup).await;
    let state = query_param(&callback, "state").unwrap();
    let (status, page) = visit(
        &app,
        &format!(
            "{}/oauth/callback?error=access_denied&state={state}",
            app.base
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("declined"), "{page}");
    let (status, _) = visit(&app, &callback).await;
    assert_eq!(status, 400, "a declined state cannot be used afterwards");

    // Anyone can send a person to the callback with words of their own:
    // roost's page shows a fixed sentence per standard code, never them.
    for (query, expected) in [
        (
            "error=access_denied&error_description=Call+0800+PHISH+to+restore+your+account",
            "declined",
        ),
        (
            "error=please_call_0800_PHISH&error_description=Your+account+is+locked",
            "did not grant access",
        ),
        ("error=invalid_scope", "permissions"),
    ] {
        let (status, page) = visit(&app, &format!("{}/oauth/callback?{query}", app.base)).await;
        assert_eq!(status, 400, "{query}");
        assert!(page.contains(expected), "{query}: {page}");
        for planted in ["0800", "PHISH", "locked", "restore"] {
            assert!(!page.contains(planted), "{query}: {page}");
        }
    }

    let (_, connected) = app.get(&token, "/v1/credentials").await;
    assert_eq!(connected["credentials"], json!([]));
    assert_eq!(redeploy_status(&app, &token, "gmail").await, 409);
}

#[tokio::test]
async fn a_code_bound_to_another_pkce_challenge_is_refused() {
    let provider = Provider::start();
    let app = app_with(&provider, "gmail-client", Duration::from_secs(300)).await;
    let token = app.user("ada").await;
    let setup = setup_url(&app, &token, "gmail").await;
    let to_provider = location(&app.client.get(&setup).send().await.unwrap());
    // An attacker's challenge (of a verifier roost does not hold).
    let mut url = reqwest::Url::parse(&to_provider).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "code_challenge" {
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let callback = location(&app.client.get(url.as_str()).send().await.unwrap());
    let (status, page) = visit(&app, &callback).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("code_verifier"), "{page}");
    let (_, connected) = app.get(&token, "/v1/credentials").await;
    assert_eq!(connected["credentials"], json!([]));
}

#[tokio::test]
async fn tokens_near_expiry_are_refreshed_once_for_concurrent_runs() {
    let provider = Provider::start();
    // Every token counts as near expiry with a two-hour window. This client
    // gets no new refresh token on refresh: the old one must be kept.
    let app = app_with(&provider, "keep-client", Duration::from_secs(7200)).await;
    let token = app.user("ada").await;
    let callback = authorize(&app, &setup_url(&app, &token, "gmail").await).await;
    assert_eq!(visit(&app, &callback).await.0, 200);
    let user_id = app.user_id(&token).await;
    let before = app
        .oauth
        .env_for_run(&user_id, &app.registry, &[])
        .await
        .unwrap();
    assert!(before.is_empty());
    assert_eq!(provider.refreshes().await, 0);

    let ids = vec!["gmail".to_string()];
    let (a, b) = tokio::join!(
        app.oauth.env_for_run(&user_id, &app.registry, &ids),
        app.oauth.env_for_run(&user_id, &app.registry, &ids),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        provider.refreshes().await,
        1,
        "two concurrent runs share one refresh"
    );
    assert_eq!(a["GMAIL_ACCESS_TOKEN"], b["GMAIL_ACCESS_TOKEN"]);
    assert_eq!(a["GMAIL_REFRESH_TOKEN"], b["GMAIL_REFRESH_TOKEN"]);
    assert!(
        !a["GMAIL_REFRESH_TOKEN"].is_empty(),
        "the old refresh token is kept"
    );
}

#[tokio::test]
async fn tokens_far_from_expiry_are_not_refreshed() {
    let provider = Provider::start();
    let app = app_with(&provider, "gmail-client", Duration::from_secs(60)).await;
    let token = app.user("ada").await;
    let callback = authorize(&app, &setup_url(&app, &token, "gmail").await).await;
    assert_eq!(visit(&app, &callback).await.0, 200);
    let user_id = app.user_id(&token).await;
    app.oauth
        .env_for_run(&user_id, &app.registry, &["gmail".into()])
        .await
        .unwrap();
    assert_eq!(provider.refreshes().await, 0);
}

#[tokio::test]
async fn invalid_grant_marks_the_credential_reconnect_needed() {
    let provider = Provider::start();
    // Slack's tokens live 12 hours: a 14-hour window makes both providers refresh.
    let app = app_with(
        &provider,
        "gmail-revoking-client",
        Duration::from_secs(14 * 3600),
    )
    .await;
    let token = app.user("ada").await;
    let callback = authorize(&app, &setup_url(&app, &token, "gmail").await).await;
    assert_eq!(visit(&app, &callback).await.0, 200);
    let user_id = app.user_id(&token).await;

    let err = app
        .oauth
        .env_for_run(&user_id, &app.registry, &["gmail".into()])
        .await
        .unwrap_err();
    let OAuthError::ReconnectNeeded {
        integration,
        setup_url: reconnect,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(integration, "gmail");
    assert!(reconnect.contains("/integrations/gmail/setup?user=") && reconnect.contains("&sig="));
    assert!(err.to_string().contains("connected again"));

    let (_, connected) = app.get(&token, "/v1/credentials").await;
    assert_eq!(connected["credentials"][0]["status"], "reconnect_needed");
    assert_eq!(
        redeploy_status(&app, &token, "gmail").await,
        409,
        "deploy asks to reconnect"
    );
    // Later runs fail the same way without asking the provider again.
    let refreshes = provider.refreshes().await;
    assert!(
        app.oauth
            .env_for_run(&user_id, &app.registry, &["gmail".into()])
            .await
            .is_err()
    );
    assert_eq!(provider.refreshes().await, refreshes);

    // Slack says the same thing its own way (HTTP 200, `ok: false`).
    let callback = authorize(&app, &setup_url(&app, &token, "slack").await).await;
    assert_eq!(visit(&app, &callback).await.0, 200);
    let err = app
        .oauth
        .env_for_run(&user_id, &app.registry, &["slack".into()])
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthError::ReconnectNeeded { .. }), "{err}");
}

#[tokio::test]
async fn slack_token_responses_are_understood() {
    let provider = Provider::start();
    let app = app_with(&provider, "gmail-client", Duration::from_secs(14 * 3600)).await;
    let token = app.user("ada").await;
    let callback = authorize(&app, &setup_url(&app, &token, "slack").await).await;
    let (status, page) = visit(&app, &callback).await;
    assert_eq!(status, 200, "{page}");
    let user_id = app.user_id(&token).await;
    let env = app
        .oauth
        .env_for_run(&user_id, &app.registry, &["slack".into()])
        .await
        .unwrap();
    assert!(env["SLACK_ACCESS_TOKEN"].starts_with("xoxb-"), "{env:?}");
    assert!(env["SLACK_REFRESH_TOKEN"].starts_with("xoxe-1-"));
    assert_eq!(
        provider.refreshes().await,
        1,
        "expires_in was read: the 12-hour token is inside the 14-hour window"
    );
}

#[tokio::test]
async fn forged_links_are_refused_and_the_api_key_form_works() {
    let provider = Provider::start();
    let app = app_with(&provider, "gmail-client", Duration::from_secs(300)).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let setup = setup_url(&app, &ada, "sendgrid").await;
    let bob_id = app.user_id(&bob).await;
    let ada_id = app.user_id(&ada).await;

    // Pointing Ada's link at Bob's account breaks the signature.
    let forged = setup.replace(&ada_id, &bob_id);
    let (status, page) = visit(&app, &forged).await;
    assert_eq!(status, 403, "{page}");
    let unsigned = setup.split("&expires=").next().unwrap().to_string();
    assert_eq!(visit(&app, &unsigned).await.0, 400);
    // A link for one integration does not open another.
    assert_eq!(
        visit(&app, &setup.replace("/sendgrid/", "/openai/"))
            .await
            .0,
        403
    );

    let (status, form) = visit(&app, &setup).await;
    assert_eq!(status, 200);
    assert!(
        form.contains("name=\"cred_api_key\"") && form.contains("SENDGRID_API_KEY"),
        "{form}"
    );

    let post = |user: &str, value: &str| {
        let params = [
            ("user", user.to_string()),
            ("link", query_param(&setup, "link").unwrap()),
            ("expires", query_param(&setup, "expires").unwrap()),
            ("sig", query_param(&setup, "sig").unwrap()),
            ("cred_api_key", value.to_string()),
        ];
        app.client
            .post(setup.split('?').next().unwrap())
            .form(&params)
            .send()
    };
    let response = post(&bob_id, "SG.forged").await.unwrap();
    assert_eq!(response.status(), 403);
    let (_, bobs) = app.get(&bob, "/v1/credentials").await;
    assert_eq!(bobs["credentials"], json!([]));

    let response = post(&ada_id, "SG.from-the-form").await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("SendGrid connected")
    );
    let env = app
        .oauth
        .env_for_run(&ada_id, &app.registry, &["sendgrid".into()])
        .await
        .unwrap();
    assert_eq!(env["SENDGRID_API_KEY"], "SG.from-the-form");
    assert_eq!(redeploy_status(&app, &ada, "sendgrid").await, 201);

    // The link is spent: replaying it (to open the form, or to post another
    // key into Ada's account) is refused and changes nothing.
    let (status, page) = visit(&app, &setup).await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("already used"), "{page}");
    let response = post(&ada_id, "SG.replayed").await.unwrap();
    assert_eq!(response.status(), 410);
    let env = app
        .oauth
        .env_for_run(&ada_id, &app.registry, &["sendgrid".into()])
        .await
        .unwrap();
    assert_eq!(env["SENDGRID_API_KEY"], "SG.from-the-form");
}

#[tokio::test]
async fn an_unconfigured_oauth_client_is_said_at_deploy_not_behind_a_link() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ada").await;
    let (status, body) = app
        .deploy_with(&token, json!({
            "name": "needs-it",
            "component": b64(&bare_module()),
            "metadata": { "integrations": ["github", "sendgrid"], "triggers": [{ "name": "run", "trigger": { "kind": "manual" } }] },
        }))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"]["code"], "integration_not_configured",
        "{body}"
    );
    let unconfigured = &body["error"]["details"]["not_configured"];
    assert_eq!(unconfigured.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(unconfigured[0]["integration"], "github");
    let settings = unconfigured[0]["settings"].as_str().unwrap();
    assert!(
        settings.contains("ROOST_OAUTH_GITHUB_CLIENT_ID"),
        "{settings}"
    );
    assert!(
        settings.contains("ROOST_OAUTH_GITHUB_CLIENT_SECRET"),
        "{settings}"
    );

    // The registry says which integrations this server cannot connect yet.
    let (_, listed) = app.get(&token, "/v1/integrations").await;
    let by_id = |id: &str| {
        listed["integrations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["integrationId"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("github")["configured"], false);
    assert!(
        by_id("github")["operatorSettings"]
            .as_str()
            .unwrap()
            .contains("ROOST_OAUTH_GITHUB_CLIENT_ID")
    );
    assert_eq!(by_id("sendgrid")["configured"], true);
    assert_eq!(by_id("sendgrid")["operatorSettings"], Value::Null);
}

/// Posts the API-key form of `setup` for `user` with `value`, the link's
/// signature spelled as `sig`.
async fn post_form(app: &TestApp, setup: &str, user: &str, sig: &str, value: &str) -> u16 {
    let params = [
        ("user", user.to_string()),
        ("link", query_param(setup, "link").unwrap()),
        ("expires", query_param(setup, "expires").unwrap()),
        ("sig", sig.to_string()),
        ("cred_api_key", value.to_string()),
    ];
    app.client
        .post(setup.split('?').next().unwrap())
        .form(&params)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn stored_audits(app: &TestApp, token: &str) -> usize {
    let (_, audit) = app.get(token, "/v1/audit").await;
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "credential.stored")
        .count()
}

/// A setup link connects once: not again with its signature re-spelled, and
/// of twelve simultaneous posts exactly one stores a credential.
async fn a_setup_link_stores_one_credential_however_it_is_replayed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let ada_id = app.user_id(&ada).await;
    let setup = setup_url(&app, &ada, "sendgrid").await;
    let sig = query_param(&setup, "sig").unwrap();

    let app = std::sync::Arc::new(app);
    let mut posts = tokio::task::JoinSet::new();
    for n in 0..12 {
        let (app, setup, user, sig) = (app.clone(), setup.clone(), ada_id.clone(), sig.clone());
        posts.spawn(
            async move { post_form(&app, &setup, &user, &sig, &format!("SG.key-{n}")).await },
        );
    }
    let mut statuses = posts.join_all().await;
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [[200].as_slice(), &[410; 11]].concat(),
        "one post wins"
    );
    assert_eq!(stored_audits(&app, &ada).await, 1);

    // The same link with its hex signature in upper case is the same link.
    let status = post_form(&app, &setup, &ada_id, &sig.to_uppercase(), "SG.again").await;
    assert_eq!(status, 410);
    assert_eq!(
        stored_audits(&app, &ada).await,
        1,
        "nothing more was stored"
    );

    // Two links made one after the other are two links.
    let other = setup_url(&app, &app.user("bob").await, "sendgrid").await;
    assert_ne!(query_param(&other, "link"), query_param(&setup, "link"));
}
on_both_stores!(a_setup_link_stores_one_credential_however_it_is_replayed);

/// An OAuth setup link opened twice starts two authorizations; once one
/// completes, the other cannot replace its token (with another account's).
#[tokio::test]
async fn an_oauth_link_opened_twice_connects_once() {
    let provider = Provider::start();
    let app = app_with(&provider, "gmail-client", Duration::from_secs(300)).await;
    let ada = app.user("ada").await;
    let setup = setup_url(&app, &ada, "gmail").await;
    let first = authorize(&app, &setup).await;
    let second = authorize(&app, &setup).await;
    assert_ne!(query_param(&first, "state"), query_param(&second, "state"));

    let (status, page) = visit(&app, &first).await;
    assert_eq!(status, 200, "{page}");
    let user = app.user_id(&ada).await;
    let token_of = || async {
        app.oauth
            .env_for_run(&user, &app.registry, &["gmail".into()])
            .await
            .unwrap()["GMAIL_ACCESS_TOKEN"]
            .clone()
    };
    let connected = token_of().await;
    let (status, page) = visit(&app, &second).await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("already used"), "{page}");
    assert_eq!(token_of().await, connected, "the first connection stands");
}

/// A link issued before the integration was connected again (through a
/// newer link) cannot replace that connection.
async fn an_older_link_cannot_replace_a_newer_connection(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let ada_id = app.user_id(&ada).await;
    let older = setup_url(&app, &ada, "sendgrid").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let newer = setup_url(&app, &ada, "sendgrid").await;
    let sig = |url: &str| query_param(url, "sig").unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        post_form(&app, &newer, &ada_id, &sig(&newer), "SG.the-newer").await,
        200
    );
    assert_eq!(
        post_form(&app, &older, &ada_id, &sig(&older), "SG.the-older").await,
        410
    );
    let env = app
        .oauth
        .env_for_run(&ada_id, &app.registry, &["sendgrid".into()])
        .await
        .unwrap();
    assert_eq!(env["SENDGRID_API_KEY"], "SG.the-newer");
}
on_both_stores!(an_older_link_cannot_replace_a_newer_connection);
