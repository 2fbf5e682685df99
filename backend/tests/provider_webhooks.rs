//! Webhooks from Shopify, GitHub and Stripe through the real server, each
//! signed the way the provider documents it (computed here with `hmac`,
//! apart from roost's own code): a good delivery runs its handler once, a
//! repeat of it runs nothing more, and a wrong secret, a changed body, a
//! stale timestamp or a missing signature are refused with nothing queued.

mod support;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::{Backend, TestApp};

fn mac(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The headers of a delivery of `body`, signed with `secret` at `ts`.
type Sign = fn(secret: &str, body: &str, ts: i64, delivery: &str) -> Vec<(&'static str, String)>;

/// One provider: its secret's credential, and how it signs a delivery.
struct Provider {
    integration: &'static str,
    credentials: Value,
    secret: &'static str,
    event_type: &'static str,
    body: &'static str,
    sign: Sign,
    /// Whether the scheme carries a timestamp.
    timestamped: bool,
}

fn shopify(secret: &str, body: &str, _ts: i64, delivery: &str) -> Vec<(&'static str, String)> {
    let signature =
        base64::engine::general_purpose::STANDARD.encode(mac(secret, &[body.as_bytes()]));
    vec![
        ("X-Shopify-Topic", "orders/create".into()),
        ("X-Shopify-Hmac-Sha256", signature),
        ("X-Shopify-Shop-Domain", "example.myshopify.com".into()),
        ("X-Shopify-Webhook-Id", delivery.into()),
    ]
}

fn github(secret: &str, body: &str, _ts: i64, delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-GitHub-Event", "issues".into()),
        ("X-GitHub-Delivery", delivery.into()),
        (
            "X-Hub-Signature-256",
            format!("sha256={}", hex::encode(mac(secret, &[body.as_bytes()]))),
        ),
    ]
}

fn stripe(secret: &str, body: &str, ts: i64, _delivery: &str) -> Vec<(&'static str, String)> {
    let signed = mac(secret, &[ts.to_string().as_bytes(), b".", body.as_bytes()]);
    vec![(
        "Stripe-Signature",
        format!("t={ts},v1={}", hex::encode(signed)),
    )]
}

fn providers() -> Vec<Provider> {
    vec![
        Provider {
            integration: "shopify",
            credentials: json!({ "access_token": "shpat_0123456789", "shop_domain": "example.myshopify.com", "api_secret": "shpss_0123456789abcdef" }),
            secret: "shpss_0123456789abcdef",
            event_type: "shopify.orders.create",
            body: r##"{"id":820982911946154508,"name":"#9999","total_price":"403.00"}"##,
            sign: shopify,
            timestamped: false,
        },
        Provider {
            integration: "github",
            credentials: json!({ "webhook_secret": "It's a Secret to Everybody" }),
            secret: "It's a Secret to Everybody",
            event_type: "github.issues",
            body: r#"{"action":"opened","issue":{"number":1347}}"#,
            sign: github,
            timestamped: false,
        },
        Provider {
            integration: "stripe",
            credentials: json!({ "secret_key": "sk_test_0123456789", "webhook_secret": "whsec_0123456789abcdef" }),
            secret: "whsec_0123456789abcdef",
            event_type: "stripe.invoice.paid",
            body: r#"{"id":"evt_1NG8Du2eZvKYlo2C","object":"event","type":"invoice.paid","data":{"object":{"amount_paid":2000}}}"#,
            sign: stripe,
            timestamped: true,
        },
    ]
}

/// `body` with its first digit changed: still JSON, one byte different.
fn one_byte_changed(body: &str) -> String {
    let at = body.find(|c: char| c.is_ascii_digit()).expect("a digit");
    let digit = body.as_bytes()[at];
    let changed = if digit == b'9' {
        '0'
    } else {
        (digit + 1) as char
    };
    format!("{}{changed}{}", &body[..at], &body[at + 1..])
}

async fn post(
    app: &TestApp,
    path: &str,
    headers: &[(&'static str, String)],
    body: &str,
) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn deliveries_are_verified_and_run_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ada").await;
    let user_id = app.user_id(&token).await;
    let events: Vec<&str> = providers().iter().map(|p| p.event_type).collect();
    deploy_listener(&app, &token, &events).await;
    let now = roost::store::now_millis() / 1000;

    for provider in providers() {
        let url = format!("/webhooks/{}/{user_id}", provider.integration);
        let delivery = format!("{}-delivery-1", provider.integration);
        let headers = (provider.sign)(provider.secret, provider.body, now, &delivery);

        // Without the secret stored, roost cannot check the delivery.
        let (status, body) = post(&app, &url, &headers, provider.body).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("not_connected")),
            "{}: {body}",
            provider.integration
        );
        let (status, body) = app
            .send(
                reqwest::Method::PUT,
                &token,
                &format!("/v1/credentials/{}", provider.integration),
                json!({ "values": provider.credentials }),
            )
            .await;
        assert_eq!(status, 200, "{body}");

        let (status, first) = post(&app, &url, &headers, provider.body).await;
        assert_eq!(status, 200, "{}: {first}", provider.integration);
        assert_eq!(first["run_ids"].as_array().unwrap().len(), 1, "{first}");
        // Providers retry: the same delivery runs nothing more.
        let (status, again) = post(&app, &url, &headers, provider.body).await;
        assert_eq!(status, 200);
        assert_eq!(
            (again["duplicate"].as_bool(), &again["run_ids"]),
            (Some(true), &first["run_ids"]),
            "{}",
            provider.integration
        );

        let changed = one_byte_changed(provider.body);
        let mut refused = vec![
            (
                "another secret",
                (provider.sign)("not-the-secret", provider.body, now, "d2"),
                provider.body.to_string(),
            ),
            (
                "a body changed by one byte",
                (provider.sign)(provider.secret, provider.body, now, "d3"),
                changed,
            ),
            (
                "no signature",
                (provider.sign)(provider.secret, provider.body, now, "d4")
                    .into_iter()
                    .filter(|(name, _)| {
                        !matches!(
                            *name,
                            "X-Shopify-Hmac-Sha256" | "X-Hub-Signature-256" | "Stripe-Signature"
                        )
                    })
                    .collect(),
                provider.body.to_string(),
            ),
        ];
        if provider.timestamped {
            refused.push((
                "a timestamp ten minutes old",
                (provider.sign)(provider.secret, provider.body, now - 600, "d5"),
                provider.body.to_string(),
            ));
        }
        for (what, headers, body) in refused {
            let (status, answer) = post(&app, &url, &headers, &body).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (401, Some("invalid_signature")),
                "{} with {what}: {answer}",
                provider.integration
            );
        }
    }

    // Unknown user, unknown integration, an integration without webhooks:
    // one answer, so the URL does not tell which.
    let headers = github("It's a Secret to Everybody", "{}", now, "x");
    let mut answers = Vec::new();
    for path in [
        "/webhooks/github/usr_nobody".to_string(),
        format!("/webhooks/acme/{user_id}"),
        format!("/webhooks/gmail/{user_id}"),
    ] {
        answers.push(post(&app, &path, &headers, "{}").await);
    }
    assert_eq!(answers[0].0, 404, "{:?}", answers[0]);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");

    let (_, runs) = app.get(&token, "/v1/runs").await;
    let mut kinds: Vec<String> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["trigger_spec"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "github.issues",
            "shopify.orders.create",
            "stripe.invoice.paid"
        ],
        "one run per good delivery, none for the refused ones"
    );
    let (status, event) = app
        .get(&token, "/v1/events/stripe:evt_1NG8Du2eZvKYlo2C")
        .await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(
        (event["event_type"].as_str(), event["source"].as_str()),
        (Some("stripe.invoice.paid"), Some("stripe"))
    );
}
on_both_stores!(deliveries_are_verified_and_run_once);

/// Deploys `listener` (a new version of it) taking `events`; its id.
async fn deploy_listener(app: &TestApp, token: &str, events: &[&str]) -> String {
    let triggers: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| json!({ "name": format!("on_{i}"), "trigger": { "kind": "event", "name": e } }))
        .collect();
    let (status, body) = app
        .deploy_with(
            token,
            json!({
                "name": "listener",
                "component": support::b64(&support::bare_module()),
                "metadata": { "integrations": [], "triggers": triggers },
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["script_id"].as_str().unwrap().to_string()
}

/// roost registers the subscriptions a user's scripts need at Shopify and
/// GitHub (a stand-in of their APIs), follows redeploys, and removes them
/// when no script listens; GitHub's hooks get a secret roost made, and a
/// delivery signed with it runs.
async fn subscriptions_follow_the_scripts(backend: Backend) {
    let provider = support::oauth_provider::Provider::start();
    let api = support::hook_providers::HookProviders::start().await;
    let base = api.base.clone();
    let github_client = provider.client("github-client");
    let app = TestApp::spawn_with(backend, move |config| {
        for id in ["shopify", "github"] {
            let settings = json!({ "baseUrl": base });
            config
                .integration_config
                .insert(id.into(), settings.as_object().unwrap().clone());
        }
        config.oauth_clients.insert("github".into(), github_client);
    })
    .await;
    let token = app.user("ada").await;
    let user_id = app.user_id(&token).await;
    let shopify_url = format!("{}/webhooks/shopify/{user_id}", app.base);
    let github_url = format!("{}/webhooks/github/{user_id}", app.base);

    // Listening before connecting subscribes nothing; connecting does.
    let script = deploy_listener(
        &app,
        &token,
        &[
            "shopify.orders.create",
            "shopify.app.uninstalled",
            "github.issues",
        ],
    )
    .await;
    let (status, body) = app
        .send(reqwest::Method::PUT, &token, "/v1/credentials/shopify",
            json!({ "values": { "access_token": "shpat_0123456789", "shop_domain": "example.myshopify.com" } }))
        .await;
    assert_eq!(status, 200, "{body}");
    let live = api
        .wait_for("shopify subscriptions", |live| live.len() == 2)
        .await;
    assert_eq!(
        live.iter()
            .map(|l| (l.topics[0].as_str(), l.address.as_str()))
            .collect::<Vec<_>>(),
        [
            ("app/uninstalled", shopify_url.as_str()),
            ("orders/create", shopify_url.as_str())
        ]
    );

    // GitHub: connected through OAuth, repositories named by the user.
    let (status, body) = app
        .deploy_with(&token, json!({
            "name": "needs-github",
            "component": support::b64(&support::bare_module()),
            "metadata": { "integrations": ["github"], "triggers": [{ "name": "run", "trigger": { "kind": "manual" } }] },
        }))
        .await;
    assert_eq!(status, 409, "{body}");
    let setup = body["error"]["details"]["missing"][0]["setup_url"]
        .as_str()
        .unwrap();
    support::oauth_provider::connect(&app, setup).await;
    let (status, body) = app
        .send(
            reqwest::Method::PUT,
            &token,
            "/v1/credentials/github",
            json!({ "values": { "webhook_repositories": "octo/one, octo/two" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let live = api
        .wait_for("a hook on each repository", |live| live.len() == 4)
        .await;
    let hooks: Vec<&support::hook_providers::Live> = live
        .iter()
        .filter(|l| l.scope.starts_with("octo/"))
        .collect();
    assert_eq!(
        hooks.iter().map(|h| h.scope.as_str()).collect::<Vec<_>>(),
        ["octo/one", "octo/two"]
    );
    for hook in &hooks {
        assert_eq!(
            (hook.topics.clone(), hook.address.as_str()),
            (vec!["issues".to_string()], github_url.as_str())
        );
    }
    // roost made the hooks' secret; a delivery GitHub signs with it runs.
    let secret = hooks[0]
        .secret
        .clone()
        .expect("hooks are created with a secret");
    assert!(secret.len() >= 32);
    let now = roost::store::now_millis() / 1000;
    let body = r#"{"action":"opened","issue":{"number":1}}"#;
    let (status, answer) = post(
        &app,
        &format!("/webhooks/github/{user_id}"),
        &github(&secret, body, now, "g-1"),
        body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["run_ids"].as_array().unwrap().len(), 1);

    // A redeploy that takes more GitHub events and fewer Shopify ones.
    deploy_listener(
        &app,
        &token,
        &["shopify.orders.create", "github.issues", "github.push"],
    )
    .await;
    api.wait_for("the redeploy's subscriptions", |live| {
        live.len() == 3
            && live.iter().any(|l| l.topics == ["orders/create"])
            && live
                .iter()
                .filter(|l| l.topics == ["issues", "push"])
                .count()
                == 2
    })
    .await;

    // Nothing listens any more: everything roost made is removed.
    let (status, _) = app
        .send(
            reqwest::Method::DELETE,
            &token,
            &format!("/v1/scripts/{script}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    api.wait_for("no subscriptions", |live| live.is_empty())
        .await;
}
on_both_stores!(subscriptions_follow_the_scripts);

/// `GET /v1/scripts/{id}/webhooks` and `roost hooks list` give the URL of
/// each integration a script's events come from.
// The CLI blocks its thread while the server answers on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripts_webhook_urls_are_listed() {
    use support::process::{roost, text};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ada").await;
    let user_id = app.user_id(&token).await;
    let script = deploy_listener(
        &app,
        &token,
        &[
            "shopify.orders.create",
            "stripe.invoice.paid",
            "shopify.orders.paid",
            "order.created",
        ],
    )
    .await;
    let (status, listed) = app
        .get(&token, &format!("/v1/scripts/{script}/webhooks"))
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["webhooks"],
        json!([
            { "integration": "shopify", "events": ["shopify.orders.create", "shopify.orders.paid"],
              "url": format!("{}/webhooks/shopify/{user_id}", app.base) },
            { "integration": "stripe", "events": ["stripe.invoice.paid"],
              "url": format!("{}/webhooks/stripe/{user_id}", app.base) },
        ])
    );
    let (status, _) = app.get(&token, "/v1/scripts/scr_nope/webhooks").await;
    assert_eq!(status, 404);

    let env = [
        ("ROOST_SERVER", app.base.as_str()),
        ("ROOST_TOKEN", token.as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let out = roost(dir.path(), &["hooks", "list", "listener"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = text(&out.stdout);
    assert!(
        out.contains(&format!(
            "webhook shopify  shopify.orders.create,shopify.orders.paid  {}/webhooks/shopify/{user_id}",
            app.base
        )),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2, "{out}");
}

/// A node that starts reconciles what changed while nothing did: here a
/// script stored without the nudge a deploy gives.
#[tokio::test]
async fn a_starting_node_makes_the_subscriptions_it_finds_missing() {
    let api = support::hook_providers::HookProviders::start().await;
    let base = api.base.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |config| {
        let settings = json!({ "baseUrl": base });
        config
            .integration_config
            .insert("shopify".into(), settings.as_object().unwrap().clone());
    })
    .await;
    let token = app.user("ada").await;
    let user_id = app.user_id(&token).await;
    // A script deployed as usual, so the running node's reconciler shows
    // it has swept and handled its nudges: one subscription.
    let (status, body) = app
        .deploy_with(&token, json!({
            "name": "early",
            "component": support::b64(&support::bare_module()),
            "metadata": { "integrations": [], "triggers": [{ "name": "on_gone", "trigger": { "kind": "event", "name": "shopify.app.uninstalled" } }] },
        }))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .send(reqwest::Method::PUT, &token, "/v1/credentials/shopify",
            json!({ "values": { "access_token": "shpat_0123456789", "shop_domain": "example.myshopify.com" } }))
        .await;
    assert_eq!(status, 200, "{body}");
    api.wait_for("the deployed script's subscription", |live| live.len() == 1)
        .await;
    // The nudges are handled in order, so once the redeploy's
    // subscription is there, nothing earlier is left to handle.
    let (status, body) = app
        .deploy_with(&token, json!({
            "name": "early",
            "component": support::b64(&support::bare_module()),
            "metadata": { "integrations": [], "triggers": [
                { "name": "on_gone", "trigger": { "kind": "event", "name": "shopify.app.uninstalled" } },
                { "name": "on_paid", "trigger": { "kind": "event", "name": "shopify.orders.paid" } },
            ] },
        }))
        .await;
    assert_eq!(status, 201, "{body}");
    api.wait_for("the redeployed script's subscriptions", |live| {
        live.len() == 2
    })
    .await;
    app.store
        .create_script_version(&roost::store::NewScriptVersion {
            user_id: user_id.clone(),
            name: "listener".into(),
            component: support::bare_module(),
            content_hash: "0".repeat(64),
            metadata: json!({ "integrations": [], "triggers": [] }),
            triggers: vec![roost::store::TriggerRow {
                handler: "on_order".into(),
                kind: roost::store::TriggerKind::Event,
                spec: "shopify.orders.create".into(),
                timezone: None,
                flow: None,
            }],
            retries: None,
            limits: None,
            caps: Default::default(),
        })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(api.live().len(), 2, "nothing nudged the running node");
    let second = app.another_node().await;
    let live = api
        .wait_for("the new node's subscription", |live| live.len() == 3)
        .await;
    let made = live.iter().find(|l| l.topics == ["orders/create"]).unwrap();
    assert_eq!(made.address, format!("{second}/webhooks/shopify/{user_id}"));
}

/// Verified deliveries count against the user's `events_per_minute` like
/// posted events (429, which providers retry); forged ones spend nothing.
#[tokio::test]
async fn deliveries_are_held_to_the_users_event_rate() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.abuse.events_per_minute = 1;
    })
    .await;
    let token = app.user("ada").await;
    let user_id = app.user_id(&token).await;
    deploy_listener(&app, &token, &["stripe.invoice.paid"]).await;
    let provider = &providers()[2];
    let (status, _) = app
        .send(
            reqwest::Method::PUT,
            &token,
            "/v1/credentials/stripe",
            json!({ "values": provider.credentials }),
        )
        .await;
    assert_eq!(status, 200);
    let url = format!("/webhooks/stripe/{user_id}");
    let now = roost::store::now_millis() / 1000;
    let body = |id: &str| {
        format!(
            r#"{{"id":"{id}","object":"event","type":"invoice.paid","data":{{"object":{{}}}}}}"#
        )
    };
    for _ in 0..3 {
        let forged = body("evt_forged");
        let (status, _) = post(
            &app,
            &url,
            &stripe("not-the-secret", &forged, now, ""),
            &forged,
        )
        .await;
        assert_eq!(status, 401);
    }
    let first = body("evt_1");
    let (status, answer) = post(
        &app,
        &url,
        &stripe(provider.secret, &first, now, ""),
        &first,
    )
    .await;
    assert_eq!(status, 200, "forged requests spent nothing: {answer}");
    let second = body("evt_2");
    let (status, answer) = post(
        &app,
        &url,
        &stripe(provider.secret, &second, now, ""),
        &second,
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (429, Some("event_rate_limited")),
        "{answer}"
    );
    let (_, runs) = app.get(&token, "/v1/runs").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
}
