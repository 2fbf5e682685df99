//! `/mcp` driven by a client nobody here wrote: the official `mcp` Python
//! SDK (installed by `tests/setup` into `~/.cache/roost-mcp-venv`) runs
//! tests/mcp/client.py against the server and prints what it saw.

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::{Backend, TestApp};

/// The venv's python, when `tests/setup` has made it.
fn mcp_python() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let python = PathBuf::from(home).join(".cache/roost-mcp-venv/bin/python");
    python.is_file().then_some(python)
}

/// The text of a tool result's first content block.
fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_client_reads_docs_lists_scripts_and_runs_one() {
    let Some(python) = mcp_python() else {
        eprintln!(
            "skipped: run tests/setup to install the mcp Python SDK (~/.cache/roost-mcp-venv)"
        );
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let script_id = app.deploy_example(&ada, "hello", "hello").await;
    let bobs_script = app.deploy_example(&bob, "hello", "hello").await;

    let client = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/mcp/client.py");
    let output = tokio::process::Command::new(&python)
        .arg(&client)
        .arg(format!("{}/mcp", app.base))
        .arg(&ada)
        .arg(&script_id)
        .arg(&bobs_script)
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
    assert_eq!(scripts.len(), 1, "only Ada's script: {scripts:?}");
    assert_eq!(scripts[0]["id"], script_id.as_str());

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

    // Without a token the SDK's client is turned away...
    assert_eq!(seen["no_token"]["refused"], true, "{}", seen["no_token"]);
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
}
