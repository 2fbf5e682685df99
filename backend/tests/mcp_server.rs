//! `/mcp` driven by a client nobody here wrote: the official `mcp` Python
//! SDK (installed by `tests/setup` into `~/.cache/roost-mcp-venv`) runs
//! tests/mcp/client.py against the server and prints what it saw.

mod support;

use std::path::PathBuf;

use roost::oauth::OAuthClientConfig;
use serde_json::Value;
use support::{Backend, TestApp, b64};

/// The text of a tool result's first content block.
fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_client_reads_docs_lists_scripts_and_runs_one() {
    let Some(python) = support::mcp_python() else {
        eprintln!(
            "skipped: run tests/setup to install the mcp Python SDK (~/.cache/roost-mcp-venv)"
        );
        return;
    };
    // gmail and slack connectable (clients configured), so a deploy needing
    // them asks for connections rather than for the operator.
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.abuse.max_payload_bytes = 64 * 1024;
        for id in ["gmail", "slack"] {
            let client = OAuthClientConfig {
                client_id: format!("mcp-{id}-client"),
                client_secret: Some("test-secret".into()),
                authorization_url: Some("http://127.0.0.1:9/authorize".into()),
                token_url: Some("http://127.0.0.1:9/token".into()),
            };
            config.oauth_clients.insert(id.into(), client);
        }
    })
    .await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let script_id = app.deploy_example(&ada, "hello", "hello").await;
    let bobs_script = app.deploy_example(&bob, "hello", "hello").await;
    // A script of Ada's that declares gmail, as one deployed before its
    // credential was disconnected would (a deploy now would be refused).
    let ada_id = app.user_id(&ada).await;
    app.store
        .create_script_version(&roost::store::NewScriptVersion {
            user_id: ada_id,
            name: "needs-gmail".into(),
            component: b"\0asm".to_vec(),
            content_hash: "cd".repeat(32),
            metadata: serde_json::json!({ "handlers": [], "integrations": ["gmail"] }),
            triggers: Vec::new(),
            retries: None,
            limits: None,
            caps: Default::default(),
        })
        .await
        .unwrap();
    // The guests the client deploys, as files: too big for an argument.
    let components = app.dir.path().join("mcp-components");
    std::fs::create_dir_all(&components).unwrap();
    for example in ["gmail-digest", "hello", "event-echo"] {
        let encoded = b64(&roost_tests::example(example));
        std::fs::write(components.join(format!("{example}.b64")), encoded).unwrap();
    }

    // A token of Ada's that only reads.
    let (status, reader) = app
        .send(
            reqwest::Method::POST,
            &ada,
            "/v1/tokens",
            serde_json::json!({ "name": "reader", "scopes": ["read"] }),
        )
        .await;
    assert_eq!(status, 201, "{reader}");

    let client = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/mcp/client.py");
    let output = tokio::process::Command::new(&python)
        .arg(&client)
        .arg(format!("{}/mcp", app.base))
        .arg(&ada)
        .arg(&script_id)
        .arg(&bobs_script)
        .arg(&components)
        .arg(reader["token"].as_str().unwrap())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "client.py failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("client.py printed no JSON ({err}); stderr: {stderr}"));

    assert_eq!(seen["server"]["name"], "roost");
    // Every tool of this increment, each with an object schema.
    let tools = seen["tools"].as_object().unwrap();
    for name in [
        "list_integrations",
        "get_integration_docs",
        "list_scripts",
        "list_runs",
        "get_run_logs",
        "run_script",
        "inspect_script",
        "deploy_script",
        "send_event",
        "connections",
    ] {
        assert_eq!(tools[name]["type"], "object", "{name}: {tools:?}");
    }
    let run_schema = &tools["run_script"];
    assert_eq!(run_schema["required"], serde_json::json!(["script_id"]));
    assert!(run_schema["properties"]["payload"].is_object());
    let status_schema = &tools["list_runs"]["properties"]["status"];
    assert!(
        status_schema.to_string().contains("succeeded"),
        "status lists the run statuses: {status_schema}"
    );

    // The docs are the markdown /v1/integrations/{id}/docs serves.
    let docs_id = seen["docs_id"].as_str().unwrap();
    let rest_docs = app
        .client
        .get(format!("{}/v1/integrations/{docs_id}/docs", app.base))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text(&seen["docs"]), rest_docs);
    assert!(text(&seen["index"]).contains(docs_id));
    let unknown = &seen["unknown_docs"];
    assert_eq!(unknown["isError"], true);
    assert_eq!(
        unknown["structuredContent"]["error"]["code"],
        "unknown_integration"
    );

    let scripts = seen["scripts"]["structuredContent"]["scripts"]
        .as_array()
        .unwrap();
    assert_eq!(scripts.len(), 2, "only Ada's scripts: {scripts:?}");
    assert!(scripts.iter().any(|s| s["id"] == script_id.as_str()));
    assert!(scripts.iter().all(|s| s["id"] != bobs_script.as_str()));

    // The run waited for its end and brought its output back.
    let run = &seen["run"]["structuredContent"];
    assert_ne!(seen["run"]["isError"], true, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["stdout"].as_str().unwrap().contains("hello from roost"));
    assert!(
        run["stdout"]
            .as_str()
            .unwrap()
            .contains(r#"{"from":"mcp"}"#)
    );
    let runs = seen["runs"]["structuredContent"]["runs"]
        .as_array()
        .unwrap();
    assert_eq!(runs[0]["id"], run["run_id"]);
    assert!(text(&seen["logs"]).starts_with("--- stdout ---\nhello from roost"));

    // Bob's script is not Ada's to run: not found, as on REST.
    let others = &seen["others_run"];
    assert_eq!(others["isError"], true);
    assert_eq!(others["structuredContent"]["error"]["code"], "not_found");
    assert_eq!(
        seen["bad_status"]["structuredContent"]["error"]["code"],
        "invalid_status"
    );
    assert!(run["method_calls"].is_array(), "{run}");
    // Pages as GET /v1/runs: Ada has one run so far.
    let page1 = &seen["page1"]["structuredContent"];
    assert_eq!(page1["runs"].as_array().unwrap().len(), 1, "{page1}");
    assert!(page1["next_cursor"].is_string(), "{page1}");
    let page2 = &seen["page2"]["structuredContent"];
    assert_eq!(page2["runs"], serde_json::json!([]), "{page2}");
    assert!(page2["next_cursor"].is_null(), "{page2}");
    assert_eq!(
        seen["bad_cursor"]["structuredContent"]["error"]["code"],
        "invalid_cursor"
    );

    // Without a token the SDK's client is turned away...
    assert_eq!(seen["no_token"]["refused"], true, "{}", seen["no_token"]);
    // A read-only token reads, and every tool that writes says which scope
    // it lacks; nothing is run, posted or deployed.
    let read_only = &seen["read_only"];
    assert_ne!(read_only["scripts"]["isError"], true, "{read_only}");
    // It sees its connections, but no link that would replace one.
    let connections = &read_only["connections"]["structuredContent"]["connections"];
    assert!(!connections.as_array().unwrap().is_empty(), "{read_only}");
    assert!(
        connections
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["setup_url"].is_null()),
        "{connections}"
    );
    for (tool, scope) in [("run", "run"), ("event", "events"), ("deploy", "deploy")] {
        let answer = &read_only[tool];
        assert_eq!(answer["isError"], true, "{tool}: {answer}");
        assert_eq!(
            answer["structuredContent"]["error"]["code"], "insufficient_scope",
            "{answer}"
        );
        assert!(
            answer.to_string().contains(&format!("needs `{scope}`")),
            "{answer}"
        );
    }
    let (_, scripts) = app.get(&ada, "/v1/scripts").await;
    assert!(
        !scripts.to_string().contains("\"nope\""),
        "nothing deployed: {scripts}"
    );
    // ...by the REST API's 401 and JSON error.
    let response = app
        .client
        .post(format!("{}/mcp", app.base))
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_token");
    let response = app
        .client
        .post(format!("{}/mcp", app.base))
        .bearer_auth("not-a-token")
        .json(&serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_token");

    // A deploy needing gmail (and slack), not connected: the links, in words.
    let refused = &seen["deploy_gmail"];
    assert_eq!(refused["isError"], true, "{refused}");
    let words = text(refused);
    assert!(
        words.starts_with("This script needs credentials that are not connected yet.")
            && words.contains("\n- gmail: ")
            && words.contains(&format!("{}/integrations/gmail/setup", app.base)),
        "{words}"
    );
    assert_eq!(
        refused["structuredContent"]["error"]["code"],
        "missing_credentials"
    );
    let missing = refused["structuredContent"]["error"]["details"]["missing"]
        .as_array()
        .unwrap();
    assert!(
        missing.iter().any(|m| m["integration"] == "gmail"),
        "{refused}"
    );

    // A deploy that goes through, and the script it made.
    let deployed = &seen["deploy_hello"];
    assert_ne!(deployed["isError"], true, "{deployed}");
    let hello_id = deployed["structuredContent"]["script_id"].as_str().unwrap();
    assert_eq!(deployed["structuredContent"]["version"], 1);
    let inspected = &seen["inspect"]["structuredContent"];
    assert_eq!(inspected["script"]["id"], hello_id, "{inspected}");
    assert_eq!(inspected["script"]["name"], "hello-again");
    assert_eq!(inspected["versions"].as_array().unwrap().len(), 1);
    assert!(inspected["triggers"].is_array() && inspected["schedules"].is_array());
    // The same as the REST API says of it.
    let (status, rest) = app.get(&ada, &format!("/v1/scripts/{hello_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(inspected["script"], rest["script"]);
    assert_eq!(inspected["triggers"], rest["triggers"]);
    let others = &seen["inspect_others"];
    assert_eq!(others["isError"], true);
    assert_eq!(others["structuredContent"]["error"]["code"], "not_found");

    // An event starts the run of the script that subscribes to it.
    assert_ne!(
        seen["deploy_echo"]["isError"], true,
        "{}",
        seen["deploy_echo"]
    );
    let event = &seen["event"];
    assert_ne!(event["isError"], true, "{event}");
    let event_id = event["structuredContent"]["event_id"].as_str().unwrap();
    let run_ids = event["structuredContent"]["run_ids"].as_array().unwrap();
    assert_eq!(run_ids.len(), 1, "{event}");
    let (status, run) = app
        .get(&ada, &format!("/v1/runs/{}", run_ids[0].as_str().unwrap()))
        .await;
    assert_eq!(status, 200, "{run}");
    let (status, _) = app.get(&ada, &format!("/v1/events/{event_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        seen["bad_event"]["structuredContent"]["error"]["code"],
        "invalid_event_type"
    );
    // A payload over the limit is refused through MCP as through REST, and
    // starts nothing.
    for call in ["big_event", "big_run"] {
        assert_eq!(
            seen[call]["structuredContent"]["error"]["code"], "payload_too_large",
            "{call}: {}",
            seen[call]
        );
    }
    let (_, runs) = app.get(&ada, "/v1/runs?limit=200").await;
    assert!(
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|run| run["payload"]["blob"].is_null()),
        "an oversized payload was queued"
    );

    // gmail, declared by a script of Ada's and never connected, is missing.
    let listed = seen["connections"]["structuredContent"]["connections"]
        .as_array()
        .unwrap();
    let gmail = listed
        .iter()
        .find(|c| c["integration"] == "gmail")
        .unwrap_or_else(|| panic!("no gmail: {listed:?}"));
    assert_eq!(gmail["standing"], "missing");
    assert_eq!(gmail["used_by"], serde_json::json!(["needs-gmail"]));
    assert!(
        gmail["setup_url"]
            .as_str()
            .unwrap()
            .contains("/integrations/gmail/setup"),
        "{gmail}"
    );
}

/// Opens an MCP session for `token` with a bare `initialize`; its id, or
/// the JSON-RPC error the server answered with.
async fn initialize(app: &TestApp, token: &str) -> Result<String, Value> {
    let response = app
        .client
        .post(format!("{}/mcp", app.base))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "cap-test", "version": "1" },
            },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.text().await.unwrap();
    // One server-sent event carrying the JSON-RPC answer.
    let answer: Value = body
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .find(|message: &Value| message.get("id").is_some())
        .unwrap_or_else(|| panic!("no answer in {body}"));
    match answer.get("error") {
        Some(error) => Err(error.clone()),
        None => Ok(session.expect("a session id")),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_keeps_at_most_the_cap_of_mcp_sessions_open() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.abuse.max_mcp_sessions_per_user = 2;
    })
    .await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let first = initialize(&app, &ada).await.unwrap();
    initialize(&app, &ada).await.unwrap();
    let refused = initialize(&app, &ada).await.unwrap_err();
    assert_eq!(refused["data"]["code"], "too_many_sessions", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("2 MCP sessions"),
        "{refused}"
    );
    // Another user's sessions are theirs, and one user's session is not
    // another's to use.
    initialize(&app, &bob).await.unwrap();
    let response = app
        .client
        .post(format!("{}/mcp", app.base))
        .bearer_auth(&bob)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &first)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&serde_json::json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" }))
        .send()
        .await
        .unwrap();
    let body = response.text().await.unwrap();
    assert!(body.contains("not_your_session"), "{body}");
    // Closing one gives its place back.
    let closed = app
        .client
        .delete(format!("{}/mcp", app.base))
        .bearer_auth(&ada)
        .header("mcp-session-id", &first)
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match initialize(&app, &ada).await {
            Ok(_) => break,
            Err(error) if std::time::Instant::now() < deadline => {
                assert_eq!(error["data"]["code"], "too_many_sessions");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the closed session's place never came back: {error}"),
        }
    }
}
