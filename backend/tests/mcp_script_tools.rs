//! A user's `#[tool]` handlers as MCP tools, driven by the official `mcp`
//! Python SDK (tests/mcp/tools_client.py): listed with their schemas after
//! a deploy (the client is told the list changed), called with good and
//! bad arguments, each good call a recorded run; and the integration docs
//! as resources.

mod support;

use std::path::PathBuf;

use serde_json::{Value, json};
use support::{Backend, TestApp, b64};

#[tokio::test(flavor = "multi_thread")]
async fn script_tools_on_sqlite() {
    script_tools(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread")]
async fn script_tools_on_postgres() {
    if support::postgres_base_url().is_none() {
        eprintln!("skipped: set ROOST_TEST_POSTGRES_URL to run the PostgreSQL variant");
        return;
    }
    script_tools(Backend::Postgres).await
}

async fn script_tools(backend: Backend) {
    let Some(python) = support::mcp_python() else {
        eprintln!(
            "skipped: run tests/setup to install the mcp Python SDK (~/.cache/roost-mcp-venv)"
        );
        return;
    };
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    app.deploy_example(&bob, "bobs", "agent-tools").await;
    let component = app.dir.path().join("agent-tools.b64");
    std::fs::write(&component, b64(&roost_tests::example("agent-tools"))).unwrap();

    let client = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/mcp/tools_client.py");
    let output = tokio::process::Command::new(&python)
        .arg(&client)
        .arg(&app.base)
        .arg(&ada)
        .arg(&component)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tools_client.py failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("tools_client.py printed no JSON ({err}); stderr: {stderr}"));

    assert_eq!(seen["capabilities"]["tools"]["listChanged"], true);
    assert!(seen["capabilities"]["resources"].is_object());
    let before = seen["tools_before"].as_array().unwrap();
    assert!(before.iter().any(|t| t == "deploy_script"));
    assert!(
        before.iter().all(|t| !t.as_str().unwrap().contains("__")),
        "no script tools before the deploy, and none of Bob's: {before:?}"
    );

    // After the deploy: the three tools, with the schemas their input
    // types derive; the plain handler and Bob's tools are not listed.
    assert_ne!(seen["deploy"]["isError"], true, "{}", seen["deploy"]);
    let tools = seen["tools"].as_object().unwrap();
    for name in ["tools__sum", "tools__greet", "tools__now"] {
        assert!(tools.contains_key(name), "{name} missing: {tools:?}");
    }
    assert!(!tools.contains_key("tools__status"));
    assert!(tools.keys().all(|name| !name.starts_with("bobs__")));
    let sum = &tools["tools__sum"];
    assert!(
        sum["description"]
            .as_str()
            .unwrap()
            .starts_with("Adds up a list of numbers"),
        "{sum}"
    );
    let schema = &sum["input_schema"];
    assert_eq!(schema["type"], "object", "{schema}");
    assert_eq!(schema["required"], json!(["numbers"]));
    assert_eq!(schema["properties"]["numbers"]["type"], "array");
    assert_eq!(schema["properties"]["numbers"]["minItems"], 1);
    assert_eq!(
        schema["properties"]["numbers"]["description"],
        "The numbers to add up."
    );
    let greet = &tools["tools__greet"]["input_schema"];
    assert_eq!(greet["properties"]["excitement"]["maximum"], 3, "{greet}");

    // Good calls answer with the handler's result.
    let sum = &seen["sum"];
    assert_ne!(sum["isError"], true, "{sum}");
    assert_eq!(
        sum["structuredContent"],
        json!({ "total": 6.5, "count": 3 })
    );
    let sum_run = sum["_meta"]["roost/run_id"].as_str().unwrap();
    assert_eq!(seen["greet"]["content"][0]["text"], "Hello, Ada!!");
    assert!(seen["now"]["structuredContent"]["unix_seconds"].is_u64());
    // A handler's error is the call's error, with the run's stderr.
    let nobody = &seen["nobody"];
    assert_eq!(nobody["isError"], true, "{nobody}");
    let error = &nobody["structuredContent"]["error"];
    assert_eq!(error["code"], "run_failed");
    assert_eq!(error["details"]["status"], "failed");
    assert!(
        error["details"]["stderr"]
            .as_str()
            .unwrap()
            .contains("asked to greet nobody"),
        "{error}"
    );

    // Arguments outside the schema are refused before any run, each
    // violation named.
    for (case, answer) in seen["invalid"].as_object().unwrap() {
        assert_eq!(answer["isError"], true, "{case}: {answer}");
        let error = &answer["structuredContent"]["error"];
        assert_eq!(error["code"], "invalid_arguments", "{case}: {answer}");
        assert!(
            !error["details"]["violations"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{case}: {answer}"
        );
    }
    // A handler that is no tool, and another user's tool, do not exist.
    for case in ["not_a_tool", "others_tool"] {
        assert_eq!(
            seen[case]["protocol_error"]["code"], -32602,
            "{case}: {}",
            seen[case]
        );
    }

    // Deploys and deletes (REST or MCP) change the list, and say so.
    let second = seen["after_second_deploy"].as_array().unwrap();
    assert!(second.iter().any(|t| t == "tools2__sum"), "{second:?}");
    assert_eq!(seen["delete_status"], 204);
    let after = seen["after_delete"].as_array().unwrap();
    assert!(
        after
            .iter()
            .all(|t| !t.as_str().unwrap().starts_with("tools2__"))
    );
    assert!(after.iter().any(|t| t == "tools__sum"));
    // One notice per change (deploy, deploy, delete), not one per watcher.
    assert_eq!(seen["notices"], 3, "{}", seen["notices"]);

    // Each good call is a run of the script, recorded with trigger `mcp`;
    // the refused ones started nothing.
    let (_, scripts) = app.get(&ada, "/v1/scripts").await;
    let tools_id = scripts["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "tools")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no script `tools`: {scripts}"));
    let (status, runs) = app
        .get(&ada, &format!("/v1/runs?script_id={tools_id}&limit=50"))
        .await;
    assert_eq!(status, 200, "{runs}");
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "sum, greet, now and nobody: {runs:?}");
    assert!(runs.iter().all(|r| r["trigger_kind"] == "mcp"), "{runs:?}");
    let (_, answer) = app.get(&ada, &format!("/v1/runs/{sum_run}")).await;
    let run = &answer["run"];
    assert_eq!(run["status"], "succeeded", "{answer}");
    assert_eq!(run["handler"], "sum");
    assert_eq!(run["payload"], json!({ "numbers": [1, 2, 3.5] }));

    // The docs as resources: the index, each integration, any set of them.
    let resources = seen["resources"].as_array().unwrap();
    assert!(resources.iter().any(|r| r == "roost://integrations"));
    assert!(resources.iter().any(|r| r == "roost://integrations/gmail"));
    assert_eq!(seen["templates"], json!(["roost://integrations/{ids}"]));
    assert!(seen["index"].as_str().unwrap().contains("| `gmail` |"));
    let gmail_docs = app
        .client
        .get(format!("{}/v1/integrations/gmail/docs", app.base))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pair = seen["pair"]["text"].as_str().unwrap();
    assert!(pair.starts_with(&gmail_docs), "{pair}");
    assert!(pair.contains("\n---\n\n# Slack"), "{pair}");
    assert_eq!(seen["pair"]["mime"], "text/markdown");
    assert_eq!(seen["unknown_resource"]["code"], -32002);
}

on_both_stores!(tools_whose_input_is_not_an_object_are_refused_at_deploy);

/// A tool's input is a JSON object with a valid schema, or the deploy is
/// refused and stores nothing: built with the SDK (a bare number as
/// input), declared by hand with a wrong schema, or declared without one
/// by a component that cannot describe it.
async fn tools_whose_input_is_not_an_object_are_refused_at_deploy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let (status, body) = app
        .deploy(&ada, "bad", &roost_tests::example("bad-tool"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_tool");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("tool `double`") && message.contains("JSON object"),
        "{message}"
    );

    let declared = |trigger: Value| {
        json!({
            "name": "declared",
            "component": b64(&support::bare_module()),
            "metadata": {
                "integrations": [],
                "triggers": [{ "name": "t", "trigger": trigger }],
            },
        })
    };
    let cases = [
        json!({ "kind": "mcp", "description": "t", "input_schema": { "type": "string" } }),
        json!({ "kind": "mcp", "description": "t",
                "input_schema": { "type": "object", "properties": { "a": { "type": 7 } } } }),
        json!({ "kind": "mcp", "description": "" }),
        // No schema, and a module that prints none when asked.
        json!({ "kind": "mcp", "description": "t" }),
    ];
    for trigger in cases {
        let (status, body) = app.deploy_with(&ada, declared(trigger.clone())).await;
        assert_eq!(status, 400, "{trigger}: {body}");
        assert_eq!(body["error"]["code"], "invalid_tool", "{trigger}: {body}");
    }
    // A hostile component asked for its tools' inputs that never answers
    // is stopped at the describe run's time limit (5 s).
    let spinning = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#,
    )
    .unwrap();
    let mut body = declared(json!({ "kind": "mcp", "description": "t" }));
    body["component"] = json!(b64(&spinning));
    let started = std::time::Instant::now();
    let (status, answer) = app.deploy_with(&ada, body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_tool", "{answer}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the describe run was not stopped"
    );
    let (_, scripts) = app.get(&ada, "/v1/scripts").await;
    assert_eq!(scripts["scripts"], json!([]), "nothing was stored");

    // Declared by hand with a good schema, it deploys and is listed.
    let good = json!({ "kind": "mcp", "description": "t",
                       "input_schema": { "type": "object", "properties": {} } });
    let (status, body) = app.deploy_with(&ada, declared(good)).await;
    assert_eq!(status, 201, "{body}");
}
