//! `roost mcp`: the MCP server over stdio, proxying to a real `roost serve`,
//! driven by the official `mcp` Python SDK's stdio client (installed by
//! `tests/setup` into `~/.cache/roost-mcp-venv`) through
//! tests/mcp/stdio_client.py; and what it says when it cannot start.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::process::{Server, roost, text};

/// The text of a tool result's first content block.
fn first_text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

/// `roost mcp` with `server` and `token`, stdin closed at once.
fn roost_mcp(data_dir: &Path, server: &str, token: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("mcp")
        .env("ROOST_DATA_DIR", data_dir)
        .env("ROOST_SERVER", server)
        .env("ROOST_TOKEN", token)
        .env_remove("ROOST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn an_agent_over_stdio_reaches_the_servers_tools() {
    let Some(python) = support::mcp_python() else {
        eprintln!(
            "skipped: run tests/setup to install the mcp Python SDK (~/.cache/roost-mcp-venv)"
        );
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[], &[]);
    let created = roost(data.path(), &["user", "create", "ada"], &[]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let token = text(&created.stdout).trim().to_string();
    let env = [
        ("ROOST_SERVER", server.url.as_str()),
        ("ROOST_TOKEN", token.as_str()),
    ];
    let hello = roost_tests::example_path("hello").display().to_string();
    let deployed = roost(data.path(), &["deploy", &hello], &env);
    assert!(deployed.status.success(), "{}", text(&deployed.stderr));

    let client = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/mcp/stdio_client.py");
    let output = Command::new(&python)
        .arg(&client)
        .arg(env!("CARGO_BIN_EXE_roost"))
        .arg(&server.url)
        .arg(&token)
        .arg(&hello)
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "stdio_client.py failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("stdio_client.py printed no JSON ({err}); stderr: {stderr}"));

    // The server's own answer to `initialize`, through the proxy.
    let init = &seen["init"];
    assert_eq!(init["serverInfo"]["name"], "roost", "{init}");
    assert!(
        init["instructions"]
            .as_str()
            .unwrap_or_default()
            .starts_with("roost runs small WebAssembly scripts"),
        "{init}"
    );
    assert!(init["capabilities"]["tools"].is_object(), "{init}");

    let tools = seen["tools"].as_object().unwrap();
    for name in [
        "list_integrations",
        "get_integration_docs",
        "list_scripts",
        "deploy_script",
        "run_script",
    ] {
        assert_eq!(tools[name]["type"], "object", "{name}: {tools:?}");
    }
    assert!(seen["tools_next_cursor"].is_null());

    // gmail's docs, the markdown the REST API serves.
    let docs = &seen["docs"];
    assert_ne!(docs["isError"], true, "{docs}");
    let rest_docs = roost(data.path(), &["integrations", "docs", "gmail"], &env);
    assert_eq!(first_text(docs), text(&rest_docs.stdout));
    assert!(first_text(docs).contains("`GMAIL_ACCESS_TOKEN`"), "{docs}");

    // A tool's failure passes through as the server made it.
    let unknown = &seen["unknown_docs"];
    assert_eq!(unknown["isError"], true, "{unknown}");
    assert_eq!(
        unknown["structuredContent"]["error"]["code"],
        "unknown_integration"
    );

    let scripts = seen["scripts"]["structuredContent"]["scripts"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", seen["scripts"]));
    assert_eq!(scripts.len(), 1, "{scripts:?}");
    assert_eq!(scripts[0]["name"], "hello");

    // The server's resources (the integration docs), listed and read
    // through the proxy.
    assert!(init["capabilities"]["resources"].is_object(), "{init}");
    let resources = seen["resources"]["resources"].as_array().unwrap();
    assert!(seen["templates"]["resourceTemplates"].is_array(), "{seen}");
    let first = resources
        .first()
        .unwrap_or_else(|| panic!("no resources: {seen}"));
    let read = &seen["resource_read"]["contents"][0];
    assert_eq!(read["uri"], first["uri"], "{seen}");
    // A deploy while connected changes the tools, and the server's notice
    // reaches the local client.
    assert_eq!(init["capabilities"]["tools"]["listChanged"], true, "{init}");
    assert_eq!(seen["deploy_status"], 0, "{seen}");
    assert_eq!(seen["list_changed"], true, "no tools/list_changed: {seen}");
    // Its stdin closed, `roost mcp` ended by itself, well within the SDK's
    // grace period before it terminates a server.
    let exit_secs = seen["exit_secs"].as_f64().unwrap();
    assert!(exit_secs < 1.5, "roost mcp took {exit_secs}s to exit");
    assert!(!stderr.contains(&token), "the token on stderr: {stderr}");

    // A refused token: exit 1, one line, no token in it, nothing on stdout.
    let wrong = "roost_not-the-right-token";
    let refused = roost_mcp(data.path(), &server.url, wrong);
    assert_eq!(refused.status.code(), Some(1));
    assert!(refused.stdout.is_empty(), "{}", text(&refused.stdout));
    let line = text(&refused.stderr);
    assert_eq!(
        line,
        format!(
            "roost mcp: the server at {} refused the token (401 unauthorized)\n",
            server.url
        )
    );
    assert!(!line.contains(wrong));
}

#[test]
fn an_unreachable_server_is_one_line() {
    let data = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let output = roost_mcp(data.path(), &url, "roost_secret-token");
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("roost mcp: cannot reach the server at {url}: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-token"), "{stderr}");
}
