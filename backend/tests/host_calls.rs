//! Host-side integration methods against a real server and a real guest
//! (`examples/host-calls`): the test defines an `acme` integration (written
//! to the server's integrations directory), points it at a scripted
//! stand-in API, and checks what reaches the provider and what the run
//! records.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::oauth_provider::{Provider, connect};
use support::scripted::Scripted;
use support::{Backend, TestApp};

const KEY: &str = "acme-key-5f0c9e1d";

/// The `acme` definition: an API key in `X-Api-Key` (or an OAuth token
/// with `oauth`), two methods, and the given delivery and rate limits.
fn acme(delivery: &str, rate_limits: Option<Value>, oauth: bool) -> Value {
    let mut definition = json!({
        "integrationId": "acme",
        "name": "Acme",
        "description": "The widgets API the host-call tests stand in for.",
        "version": "1.0.0",
        "authType": "apikey",
        "credentials": [{
            "key": "api_key", "type": "api_key", "description": "Acme API key",
            "envVar": "ACME_API_KEY", "required": true,
            "placement": { "in": "header", "name": "X-Api-Key" }
        }],
        "credentialDelivery": delivery,
        "setupUrlTemplate": "{base_url}/integrations/acme/setup?user={user_id}",
        "docsUrl": "https://acme.test/docs",
        "outboundHosts": ["api.acme.test"],
        "configSchema": { "type": "object", "properties": {
            "baseUrl": { "type": "string", "format": "uri", "default": "https://api.acme.test" }
        }, "additionalProperties": false },
        "methods": [
            {
                "id": "get_widget", "name": "Get widget", "description": "One widget.",
                "inputSchema": { "type": "object", "properties": { "id": { "type": "string" } },
                    "required": ["id"], "additionalProperties": false },
                "outputSchema": { "type": "object", "properties": {
                    "id": { "type": "string" }, "name": { "type": "string" } },
                    "required": ["id", "name"] },
                "http": { "method": "GET", "path": "/widgets/{id}" }
            },
            {
                "id": "create_widget", "name": "Create widget", "description": "A new widget.",
                "inputSchema": { "type": "object", "properties": {
                    "name": { "type": "string", "minLength": 1 },
                    "size": { "type": "integer", "minimum": 1, "maximum": 10 } },
                    "required": ["name"], "additionalProperties": false },
                "outputSchema": { "type": "object", "properties": { "id": { "type": "string" } },
                    "required": ["id"] },
                "http": { "method": "POST", "path": "/widgets", "bodyKey": "widget" }
            }
        ]
    });
    if let Some(limits) = rate_limits {
        definition["rateLimits"] = limits;
    }
    if oauth {
        definition["authType"] = json!("oauth2");
        definition["oauth2Config"] = json!({
            "authorizationUrl": "https://auth.acme.test/authorize",
            "tokenUrl": "https://auth.acme.test/token",
            "scopes": ["widgets"]
        });
        definition["credentials"] = json!([{
            "key": "access_token", "type": "oauth2", "description": "Acme access token",
            "envVar": "ACME_ACCESS_TOKEN", "required": true,
            "refreshKey": "refresh_token", "refreshEnvVar": "ACME_REFRESH_TOKEN",
            "placement": { "in": "header", "name": "Authorization", "prefix": "Bearer " }
        }]);
    }
    definition
}

/// A server that knows `definition` and sends `acme` calls to `api`.
async fn server(definition: &Value, api: &Scripted, provider: Option<&Provider>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("acme.json"), definition.to_string()).unwrap();
    let dir_path = dir.keep();
    let base = api.base.clone();
    let client = provider.map(|p| p.client("acme-client"));
    TestApp::spawn_with(Backend::Sqlite, move |config| {
        config.integrations_dir = Some(dir_path);
        let settings = json!({ "baseUrl": base });
        config
            .integration_config
            .insert("acme".into(), settings.as_object().unwrap().clone());
        if let Some(client) = client {
            config.oauth_clients.insert("acme".into(), client);
        }
    })
    .await
}

/// A user with the API key stored and `host-calls` deployed; returns
/// (user token, script id).
async fn deployed(app: &TestApp) -> (String, String) {
    let ada = app.user("ada").await;
    let (status, body) = app
        .send(
            Method::PUT,
            &ada,
            "/v1/credentials/acme",
            json!({ "values": { "api_key": KEY } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, deployed) = app
        .deploy(&ada, "host-calls", &roost_tests::example("host-calls"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    (ada, deployed["script_id"].as_str().unwrap().to_string())
}

/// A user who connects OAuth `acme` through the setup link its first
/// deploy answers with, then deploys `host-calls`: (token, script id, the
/// deploy's answer).
async fn deployed_connecting(app: &TestApp) -> (String, String, Value) {
    let ada = app.user("ada").await;
    let component = roost_tests::example("host-calls");
    let (status, refused) = app.deploy(&ada, "host-calls", &component).await;
    assert_eq!(status, 409, "{refused}");
    let setup = refused["error"]["details"]["missing"][0]["setup_url"]
        .as_str()
        .unwrap();
    connect(app, setup).await;
    let (status, deployed) = app.deploy(&ada, "host-calls", &component).await;
    assert_eq!(status, 201, "{deployed}");
    let script = deployed["script_id"].as_str().unwrap().to_string();
    (ada, script, deployed)
}

/// Runs the script with `payload` and waits: (stdout, the run as
/// GET /v1/runs/{id} shows it).
async fn run(app: &TestApp, token: &str, script: &str, payload: Value) -> (String, Value) {
    let (status, run) = app
        .send(
            Method::POST,
            token,
            &format!("/v1/scripts/{script}/run?wait=true&timeout=60"),
            json!({ "payload": payload }),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    let id = run["run_id"].as_str().unwrap();
    let (status, shown) = app.get(token, &format!("/v1/runs/{id}")).await;
    assert_eq!(status, 200);
    (run["stdout"].as_str().unwrap().to_string(), shown)
}

/// A payload of one call.
fn one_call(method: &str, input: Value) -> Value {
    json!({ "calls": [{ "method": method, "input": input }] })
}

fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with `{prefix}` in:\n{stdout}"))
}

#[tokio::test]
async fn inputs_and_outputs_are_checked_against_the_schemas_and_calls_are_recorded() {
    let api = Scripted::start(json!({ "id": "w-1" })).await;
    let app = server(&acme("env", None, false), &api, None).await;
    let (ada, script) = deployed(&app).await;
    api.then(200, &[], json!({ "id": 5, "name": "gear" })); // breaks the outputSchema
    let (stdout, shown) = run(
        &app,
        &ada,
        &script,
        json!({ "calls": [
            { "method": "create_widget", "input": { "name": "", "size": 50 } },
            { "method": "create_widget", "input": { "name": "w", "colour": "red" } },
            { "method": "get_widget", "input": { "id": "w-1" } },
            { "method": "create_widget", "input": { "name": "gear", "size": 3 } },
            { "method": "explode", "input": {} }
        ] }),
    )
    .await;
    let calls: Vec<&str> = stdout.lines().filter(|l| l.starts_with("call ")).collect();
    assert_eq!(calls.len(), 5, "{stdout}");
    assert!(
        calls[0].contains("InvalidInput") && calls[0].contains("name"),
        "{}",
        calls[0]
    );
    assert!(
        calls[1].contains("InvalidInput") && calls[1].contains("colour"),
        "{}",
        calls[1]
    );
    assert!(
        calls[2].contains("Decode") && calls[2].contains("`id`"),
        "{}",
        calls[2]
    );
    assert_eq!(
        calls[3],
        r#"call create_widget: ok {"id":"w-1"} (12 bytes)"#
    );
    assert!(
        calls[4].contains("unknown_method") && calls[4].contains("create_widget, get_widget"),
        "{}",
        calls[4]
    );

    // Refused input sent nothing: the provider saw the get and the good create.
    let seen = api.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/widgets/w-1")
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("POST", "/widgets")
    );
    assert_eq!(
        seen[1].json(),
        json!({ "widget": { "name": "gear", "size": 3 } })
    );
    for request in &seen {
        assert_eq!(request.header("x-api-key").as_deref(), Some(KEY));
    }

    // The run shows each call of a real method, never the key.
    let recorded = shown["method_calls"].as_array().unwrap();
    let summary: Vec<(&str, &str, i64)> = recorded
        .iter()
        .map(|c| {
            (
                c["method"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("create_widget", "invalid_input", 0),
            ("create_widget", "invalid_input", 0),
            ("get_widget", "invalid_output", 1),
            ("create_widget", "ok", 1),
        ]
    );
    assert_eq!(recorded[3]["integration"], "acme");
    assert_eq!(recorded[3]["http_status"], 200);
    assert_eq!(recorded[3]["retries"], 0);
    assert!(!shown.to_string().contains(KEY));
}

#[tokio::test]
async fn rate_limited_and_unavailable_answers_are_retried_until_they_succeed() {
    let api = Scripted::start(json!({ "id": "w-1", "name": "gear" })).await;
    let app = server(&acme("env", None, false), &api, None).await;
    let (ada, script) = deployed(&app).await;
    api.then(
        429,
        &[("retry-after", "1")],
        json!({ "message": "slow down" }),
    )
    .then(503, &[], json!({ "message": "maintenance" }));
    let (stdout, shown) = run(
        &app,
        &ada,
        &script,
        one_call("get_widget", json!({ "id": "w-1" })),
    )
    .await;
    assert_eq!(
        line(&stdout, "call get_widget"),
        r#"call get_widget: ok {"id":"w-1","name":"gear"} (26 bytes)"#
    );
    let seen = api.seen();
    assert_eq!(seen.len(), 3);
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_millis(990),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    let call = &shown["method_calls"][0];
    assert_eq!(
        (call["attempts"].as_i64(), call["retries"].as_i64()),
        (Some(3), Some(2))
    );
    assert_eq!(call["status"], "ok");

    // A POST that fails with a 500 may have done its work: not retried.
    api.forget();
    api.then(500, &[], json!({ "message": "boom" }));
    let (stdout, shown) = run(
        &app,
        &ada,
        &script,
        one_call("create_widget", json!({ "name": "gear" })),
    )
    .await;
    assert!(
        line(&stdout, "call create_widget").contains("Server { status: 500"),
        "{stdout}"
    );
    assert_eq!(api.seen().len(), 1);
    assert_eq!(shown["method_calls"][0]["status"], "provider_error");
    assert_eq!(shown["method_calls"][0]["http_status"], 500);

    // A provider that keeps failing gets a bounded number of attempts.
    api.forget();
    api.otherwise(503, json!({ "message": "down" }));
    let (stdout, _) = run(
        &app,
        &ada,
        &script,
        one_call("get_widget", json!({ "id": "w-1" })),
    )
    .await;
    assert!(
        line(&stdout, "call get_widget").contains("Server { status: 503"),
        "{stdout}"
    );
    assert_eq!(api.seen().len(), 4);
}

#[tokio::test]
async fn the_rate_limit_spaces_a_users_calls_as_the_definition_says() {
    let api = Scripted::start(json!({ "id": "w-1", "name": "gear" })).await;
    let limits = json!({ "requestsPerSecond": 5, "burst": 1 });
    let mut definition = acme("env", Some(limits), false);
    // create_widget has a slower limit of its own, in its own bucket.
    definition["methods"][1]["rateLimits"] = json!({ "requestsPerSecond": 2, "burst": 1 });
    let app = server(&definition, &api, None).await;
    let (ada, script) = deployed(&app).await;
    let calls: Vec<Value> = (0..6)
        .map(|_| json!({ "method": "get_widget", "input": { "id": "w-1" } }))
        .collect();
    let (stdout, _) = run(&app, &ada, &script, json!({ "calls": calls })).await;
    assert_eq!(stdout.matches(": ok ").count(), 6, "{stdout}");
    let seen = api.seen();
    assert_eq!(seen.len(), 6);
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(180),
            "calls 200 ms apart at 5/s, got {gap:?}"
        );
    }
    assert!(seen[5].at - seen[0].at >= Duration::from_millis(950));

    api.forget();
    api.otherwise(200, json!({ "id": "w-2" }));
    let calls: Vec<Value> = (0..3)
        .map(|_| json!({ "method": "create_widget", "input": { "name": "gear" } }))
        .collect();
    let (stdout, _) = run(&app, &ada, &script, json!({ "calls": calls })).await;
    assert_eq!(stdout.matches(": ok ").count(), 3, "{stdout}");
    let seen = api.seen();
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(480),
            "calls 500 ms apart at 2/s, got {gap:?}"
        );
    }
    let (_, operations) = app.get(&ada, "/v1/integrations/acme/operations").await;
    let rate = |i: usize| operations["operations"][i]["rateLimits"]["requestsPerSecond"].as_f64();
    // Operations are listed by id: create_widget, then get_widget.
    assert_eq!((rate(0), rate(1)), (Some(2.0), Some(5.0)), "{operations}");
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_and_the_call_sent_again() {
    let provider = Provider::start();
    let api = Scripted::start(json!({ "id": "w-1", "name": "gear" })).await;
    let app = server(&acme("host", None, true), &api, Some(&provider)).await;
    let (ada, script, _) = deployed_connecting(&app).await;

    api.then(401, &[], json!({ "error": { "message": "token revoked" } }));
    let before = provider.refreshes().await;
    let input = one_call("get_widget", json!({ "id": "w-1" }));
    let (stdout, shown) = run(&app, &ada, &script, input.clone()).await;
    assert!(
        line(&stdout, "call get_widget").contains(": ok "),
        "{stdout}"
    );
    assert_eq!(provider.refreshes().await, before + 1);
    let seen = api.seen();
    assert_eq!(seen.len(), 2);
    let (first, second) = (
        seen[0].header("authorization"),
        seen[1].header("authorization"),
    );
    assert!(first.as_deref().unwrap().starts_with("Bearer "));
    assert_ne!(first, second, "the call was sent again with the new token");
    assert_eq!(shown["method_calls"][0]["refreshed"], true);

    // A token the provider keeps refusing: one refresh, one resend, then
    // the 401 is the script's typed error.
    api.forget();
    api.otherwise(401, json!({ "error": { "message": "no" } }));
    let before = provider.refreshes().await;
    let (stdout, _) = run(&app, &ada, &script, input).await;
    assert!(
        line(&stdout, "call get_widget").contains("Unauthorized"),
        "{stdout}"
    );
    assert_eq!(provider.refreshes().await, before + 1);
    assert_eq!(api.seen().len(), 2);
}

/// roost refreshes tokens on the host: a script that did not ask for the
/// refresh token (`wants_refresh_token!`) gets the access token only.
#[tokio::test]
async fn a_script_gets_no_refresh_token_unless_it_asks() {
    let provider = Provider::start();
    let api = Scripted::start(json!({ "id": "w-1", "name": "gear" })).await;
    let app = server(&acme("env", None, true), &api, Some(&provider)).await;
    let (ada, script, deployed) = deployed_connecting(&app).await;
    assert_eq!(deployed["notices"], json!([]), "{deployed}");
    let (stdout, _) = run(&app, &ada, &script, json!({ "calls": [] })).await;
    let env = line(&stdout, "env: ");
    assert!(env.contains("ACME_ACCESS_TOKEN"), "{env}");
    assert!(!env.contains("ACME_REFRESH_TOKEN"), "{env}");
}

/// A path parameter of `.` or `..` would send the user's key to another
/// path of the provider (`/widgets/..` is `/`): refused, nothing sent.
#[tokio::test]
async fn a_path_parameter_cannot_climb_out_of_the_methods_path() {
    let api = Scripted::start(json!({ "id": "w-1", "name": "gear" })).await;
    let app = server(&acme("host", None, false), &api, None).await;
    let (ada, script) = deployed(&app).await;
    let calls: Vec<Value> = ["..", ".", "%2e%2e", "%252e."]
        .iter()
        .map(|id| json!({ "method": "get_widget", "input": { "id": id } }))
        .collect();
    let (stdout, _) = run(&app, &ada, &script, json!({ "calls": calls })).await;
    let refused: Vec<&str> = stdout.lines().filter(|l| l.starts_with("call ")).collect();
    assert_eq!(refused.len(), 4, "{stdout}");
    for line in refused {
        assert!(
            line.contains("InvalidInput") && line.contains("`..`"),
            "{line}"
        );
    }
    assert!(api.seen().is_empty(), "nothing reached the provider");
}

/// A 401 for a key (not OAuth) cannot be fixed by roost: the key reads as
/// `rejected`, the script's error and deploy give the link to replace it.
#[tokio::test]
async fn a_refused_key_reads_as_rejected_and_deploy_offers_to_replace_it() {
    let api = Scripted::start(json!({ "id": "w-1", "name": "gear" })).await;
    let app = server(&acme("host", None, false), &api, None).await;
    let (ada, script) = deployed(&app).await;
    api.otherwise(401, json!({ "error": { "message": "key revoked" } }));
    let (stdout, shown) = run(
        &app,
        &ada,
        &script,
        one_call("get_widget", json!({ "id": "w-1" })),
    )
    .await;
    let call = line(&stdout, "call get_widget");
    assert!(call.contains("store a new one at"), "{stdout}");
    assert!(call.contains("/integrations/acme/setup"), "{stdout}");
    assert_eq!(api.seen().len(), 1, "a refused key is not sent again");
    assert_eq!(shown["method_calls"][0]["status"], "not_connected");

    let (_, credentials) = app.get(&ada, "/v1/credentials").await;
    assert_eq!(
        credentials["credentials"][0]["status"], "rejected",
        "{credentials}"
    );
    let (status, refused) = app
        .deploy(&ada, "host-calls", &roost_tests::example("host-calls"))
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(
        refused["error"]["details"]["missing"][0]["integration"],
        "acme"
    );
}

#[tokio::test]
async fn host_only_credentials_never_enter_the_sandbox_nor_does_the_provider_open() {
    let api = Scripted::start(json!({ "id": "w-1", "name": "gear" })).await;
    let app = server(&acme("host", None, false), &api, None).await;
    let (ada, script) = deployed(&app).await;
    let direct = format!("{}/widgets/w-1", api.base);
    let (stdout, _) = run(
        &app,
        &ada,
        &script,
        json!({ "direct": direct, "calls": [{ "method": "get_widget", "input": { "id": "w-1" } }] }),
    )
    .await;
    let env = line(&stdout, "env: ");
    assert!(!env.contains("ACME_API_KEY"), "{env}");
    assert!(env.contains("ROOST_INTEGRATION_ACME"), "{env}");
    assert!(
        line(&stdout, "direct: ").starts_with("direct: failed"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "call get_widget").contains(": ok "),
        "{stdout}"
    );
    // Only the host's call reached the provider, with the key.
    let seen = api.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-api-key").as_deref(), Some(KEY));
    // A provider that echoes the key does not hand it to the script.
    api.then(200, &[], json!({ "id": "w-1", "name": KEY }));
    let (stdout, _) = run(
        &app,
        &ada,
        &script,
        one_call("get_widget", json!({ "id": "w-1" })),
    )
    .await;
    let received = r#"{"id":"w-1","name":"[roost: masked credential]"}"#;
    assert_eq!(
        line(&stdout, "call get_widget"),
        format!("call get_widget: ok {received} ({} bytes)", received.len()),
    );
    let seen = api.seen();
    assert_eq!(seen.len(), 2);
    // The host's use of the key is an audited read of the run.
    let (_, audit) = app.get(&ada, "/v1/audit").await;
    let reads: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "credential.read_for_run")
        .collect();
    // One per run (two runs, each with one call), none per call.
    assert_eq!(reads.len(), 2, "{audit}");
    assert_ne!(reads[0]["run_id"], reads[1]["run_id"]);
    for read in reads {
        assert_eq!(read["detail"], "for host-side calls");
        assert_eq!(read["integration"], "acme");
    }

    // The same integration with env delivery: the key is in the env and
    // the provider is reachable directly, so the check above can fail.
    let api = Scripted::start(json!({ "id": "w-1", "name": "gear" })).await;
    let app = server(&acme("env", None, false), &api, None).await;
    let (ada, script) = deployed(&app).await;
    let direct = format!("{}/widgets/w-1", api.base);
    let (stdout, _) = run(&app, &ada, &script, json!({ "direct": direct })).await;
    assert!(line(&stdout, "env: ").contains("ACME_API_KEY"), "{stdout}");
    assert_eq!(line(&stdout, "direct: "), "direct: status 200");
}
