//! `roost run` and `roost inspect` as a user calls them: the real binary,
//! real example guests, exit statuses that scripts can rely on.

use std::process::{Command, Output};

fn roost(args: &[&str], data_dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(args)
        .env("ROOST_DATA_DIR", data_dir)
        // A secret in roost's own environment that no guest may see.
        .env("ROOST_HOST_ONLY_SECRET", "host-secret-value")
        .output()
        .expect("running roost")
}

fn example(name: &str) -> String {
    roost_tests::example_path(name).display().to_string()
}

#[test]
fn run_prints_guest_output_and_a_one_line_outcome() {
    let data = tempfile::tempdir().unwrap();
    let out = roost(
        &[
            "run",
            &example("hello"),
            "--env",
            "GREETING=hi there",
            "--payload",
            r#"{"name":"roost"}"#,
        ],
        data.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("env GREETING=hi there\n"), "{stdout}");
    assert!(stdout.contains(r#"payload {"name":"roost"}"#), "{stdout}");
    assert!(
        !stdout.contains("host-secret-value"),
        "the guest saw roost's environment"
    );
    assert!(
        !stdout.contains("env PATH="),
        "the guest saw roost's environment"
    );
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("roost: exited with status 0 after"),
        "{stderr}"
    );
    // The compiled artifact landed in the data directory's cache.
    assert!(
        data.path()
            .join("cache/compiled")
            .read_dir()
            .unwrap()
            .next()
            .is_some()
    );
}

#[test]
fn run_exits_124_on_a_limit_and_names_it() {
    let data = tempfile::tempdir().unwrap();
    let out = roost(
        &["run", &example("infinite-loop"), "--timeout-ms", "200"],
        data.path(),
    );
    assert_eq!(out.status.code(), Some(124));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wall_time limit exceeded"), "{stderr}");

    let out = roost(
        &["run", &example("memory-hog"), "--memory-mib", "16"],
        data.path(),
    );
    assert_eq!(out.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory limit exceeded"));
}

#[test]
fn run_passes_the_guest_exit_status_through() {
    let data = tempfile::tempdir().unwrap();
    let out = roost(&["run", &example("forbidden-egress")], data.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{stderr}");
    assert!(
        stderr.contains("outbound request to forbidden.example.com denied"),
        "{stderr}"
    );
}

#[test]
fn run_rejects_non_wasm_with_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let script = data.path().join("script.wasm");
    std::fs::write(&script, "echo not wasm").unwrap();
    let out = roost(&["run", script.to_str().unwrap()], data.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a WebAssembly binary"), "{stderr}");
    assert!(stderr.contains("wasm32-wasip2 component"), "{stderr}");
}

#[test]
fn inspect_prints_metadata_as_json() {
    let data = tempfile::tempdir().unwrap();
    let out = roost(&["inspect", &example("heartbeat")], data.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["handlers"][0]["name"], "beat");
    assert_eq!(meta["handlers"][0]["trigger"]["kind"], "schedule");
    assert_eq!(meta["handlers"][0]["trigger"]["cron"], "0 */5 * * * *");
    assert_eq!(meta["handlers"][1]["trigger"]["kind"], "manual");
}

#[test]
fn inspect_shows_flow_control_with_its_keys() {
    let data = tempfile::tempdir().unwrap();
    let out = roost(&["inspect", &example("ledger-sync")], data.path());
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let flow = |name: &str| {
        meta["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap()["flow"]
            .clone()
    };
    assert_eq!(
        flow("sync"),
        serde_json::json!({ "concurrency": { "key": "customer", "limit": 1 } })
    );
    assert_eq!(
        flow("export"),
        serde_json::json!({ "concurrency": { "key": "", "limit": 2 } })
    );
}

#[test]
fn inspect_shows_tools_with_their_input_schemas_and_run_prints_a_result() {
    let data = tempfile::tempdir().unwrap();
    let out = roost(&["inspect", &example("agent-tools")], data.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let handlers = meta["handlers"].as_array().unwrap();
    let sum = handlers.iter().find(|h| h["name"] == "sum").unwrap();
    assert_eq!(sum["trigger"]["kind"], "mcp");
    assert!(
        sum["trigger"]["description"]
            .as_str()
            .unwrap()
            .starts_with("Adds up")
    );
    assert_eq!(
        sum["trigger"]["input_schema"]["required"],
        serde_json::json!(["numbers"])
    );
    let status = handlers.iter().find(|h| h["name"] == "status").unwrap();
    assert_eq!(status["trigger"]["kind"], "manual");

    // Run by hand, a tool prints its result as JSON.
    let out = roost(
        &[
            "run",
            &example("agent-tools"),
            "--handler",
            "sum",
            "--payload",
            r#"{"numbers": [2, 3]}"#,
        ],
        data.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"total\": 5.0"), "{stdout}");
    // Arguments that do not fit fail the run, saying why.
    let out = roost(
        &[
            "run",
            &example("agent-tools"),
            "--handler",
            "sum",
            "--payload",
            "{}",
        ],
        data.path(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("do not fit its input"), "{stderr}");
}

#[test]
fn a_local_run_shows_the_events_it_emits() {
    let data = tempfile::tempdir().unwrap();
    let out = roost(
        &[
            "run",
            &example("ping"),
            "--handler",
            "start",
            "--payload",
            r#"{"stop_at": 2}"#,
        ],
        data.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"emitted event local-e1 ping: {"n":1,"sleep_ms":0,"stop_at":2}"#),
        "{stderr}"
    );
}

#[test]
fn an_integration_without_its_credential_fails_with_a_typed_error() {
    let data = tempfile::tempdir().unwrap();
    // order-alert uses slack; run outside roost's server, nothing injects
    // SLACK_ACCESS_TOKEN.
    let out = roost(
        &[
            "run",
            &example("order-alert"),
            "--payload",
            r##"{"name":"#1001","total_price":"25.00"}"##,
        ],
        data.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "roost: handler `alert` failed: slack: credential missing: SLACK_ACCESS_TOKEN is not set"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_local_run_prints_outbox_messages() {
    let data = tempfile::tempdir().unwrap();
    let out = roost(
        &[
            "run",
            &example("notify"),
            "--payload",
            r#"{"subject":"Backup","body":"backup finished"}"#,
        ],
        data.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("stored message local-1"), "{stdout}");
    assert!(
        stderr.contains("roost: outbox message local-1 [Backup]: backup finished"),
        "{stderr}"
    );
}

#[test]
fn integration_check_validates_a_definition_as_startup_would() {
    let data = tempfile::tempdir().unwrap();
    let builtin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/sendgrid.json");
    let mut definition: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(builtin).unwrap()).unwrap();
    definition["integrationId"] = "mailer".into();
    definition["name"] = "Mailer".into();
    definition["credentials"][0]["envVar"] = "MAILER_API_KEY".into();
    let good = data.path().join("mailer.json");
    std::fs::write(&good, definition.to_string()).unwrap();
    let out = roost(
        &["integration", "check", good.to_str().unwrap()],
        data.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("ok: `mailer` (Mailer), 1 method(s)")
            && stdout.contains("MAILER_API_KEY"),
        "{stdout}"
    );

    // An env var another integration already uses, and a reserved one.
    for (var, needle) in [
        ("SENDGRID_API_KEY", "`SENDGRID_API_KEY` is claimed by both"),
        ("ROOST_KEY", "not start with ROOST_"),
    ] {
        definition["credentials"][0]["envVar"] = var.into();
        let bad = data.path().join("bad.json");
        std::fs::write(&bad, definition.to_string()).unwrap();
        let out = roost(
            &["integration", "check", bad.to_str().unwrap()],
            data.path(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
    let out = roost(&["integration", "check", "/nonexistent.json"], data.path());
    assert_eq!(out.status.code(), Some(1));

    // A mapping that refers to what the method does not have.
    definition["credentials"][0]["envVar"] = "MAILER_API_KEY".into();
    for (change, needle) in [
        (
            serde_json::json!({ "method": "POST", "path": "/v3/mail/{mailbox}" }),
            "`methods[0].http.path`: `{mailbox}` must be a required property",
        ),
        (
            serde_json::json!({ "method": "GET", "path": "/v3/mail", "query": ["colour"] }),
            "`methods[0].http.query`: `colour` is not a property",
        ),
        (
            serde_json::json!({ "method": "POST", "path": "/v3/mail", "headers": { "X-Version": "{config.version}" } }),
            "`methods[0].http.headers.X-Version`",
        ),
        (
            serde_json::json!({ "method": "FETCH", "path": "/v3/mail" }),
            "is not one of GET",
        ),
        (
            serde_json::json!({ "method": "POST", "path": "/v3/mail/send", "rateLimits": { "requestsPerSecond": 1, "burst": 1 } }),
            "unknown field `rateLimits`",
        ),
    ] {
        definition["methods"][0]["http"] = change;
        let bad = data.path().join("bad.json");
        std::fs::write(&bad, definition.to_string()).unwrap();
        let out = roost(
            &["integration", "check", bad.to_str().unwrap()],
            data.path(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(needle), "{needle} not in {stderr}");
    }
    definition["methods"][0]["http"] =
        serde_json::json!({ "method": "POST", "path": "/v3/mail/send" });
    definition["methods"][0]["inputSchema"]["properties"]["to"] =
        serde_json::json!({ "type": "strin" });
    let bad = data.path().join("bad.json");
    std::fs::write(&bad, definition.to_string()).unwrap();
    let out = roost(
        &["integration", "check", bad.to_str().unwrap()],
        data.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`methods[0].inputSchema`: is not a valid JSON Schema"),
        "{stderr}"
    );
}

/// A webhook scheme is proven by its test vectors: the shipped Stripe
/// definition passes, and a vector that does not hold, or a section
/// without a delivery that fails, is refused naming the field.
#[test]
fn integration_check_proves_a_webhook_scheme_with_its_vectors() {
    let data = tempfile::tempdir().unwrap();
    let builtin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/stripe.json");
    let definition: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(builtin).unwrap()).unwrap();
    let file = data.path().join("stripe.json");
    let check = |definition: &serde_json::Value| {
        std::fs::write(&file, definition.to_string()).unwrap();
        roost(
            &["integration", "check", file.to_str().unwrap()],
            data.path(),
        )
    };
    let out = check(&definition);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .contains("webhooks: HMAC-SHA256 in Stripe-Signature with the user's `webhook_secret`")
            && stdout.contains("6 test vector(s) pass"),
        "{stdout}"
    );

    let mut changed_body = definition.clone();
    let body = changed_body["webhooks"]["testVectors"][0]["body"]
        .as_str()
        .unwrap()
        .replace("2000", "2001");
    changed_body["webhooks"]["testVectors"][0]["body"] = body.into();
    let mut only_valid = definition.clone();
    only_valid["webhooks"]["testVectors"]
        .as_array_mut()
        .unwrap()
        .retain(|v| v["valid"] == true);
    let mut unknown_secret = definition.clone();
    unknown_secret["webhooks"]["secret"]["key"] = "signing_key".into();
    for (bad, needle) in [
        (
            changed_body,
            "`webhooks.testVectors[0]`: `an invoice.paid event` should verify: signature mismatch",
        ),
        (
            only_valid,
            "`webhooks.testVectors`: needs at least one delivery that verifies and one that does not",
        ),
        (
            unknown_secret,
            "`webhooks.secret.key`: `signing_key` is not one of the credentials",
        ),
    ] {
        let out = check(&bad);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(needle), "{needle} not in {stderr}");
    }
}

/// `roost run --state FILE`: state kept in a file across local runs, saved
/// only when a run succeeds.
#[test]
fn run_keeps_state_in_a_file_when_asked() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("probe-state.json");
    let file_arg = file.display().to_string();
    let run = |steps: &str| {
        roost(
            &[
                "run",
                &example("state-probe"),
                "--state",
                &file_arg,
                "--payload",
                &format!(r#"{{"steps":{steps}}}"#),
            ],
            data.path(),
        )
    };
    let first = run(r#"[{"get":"count"},{"set":["count",1]},{"setTtl":["soon",true,3600]}]"#);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains(r#"{"get":"count","value":null}"#));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["entries"][0]["key"], "count");
    assert_eq!(saved["entries"][0]["value"], 1);
    assert!(
        saved["entries"][1]["expiresAt"].as_i64().is_some(),
        "{saved}"
    );

    // A failing run reads the file and leaves it as it was.
    let before = std::fs::read_to_string(&file).unwrap();
    let failed = run(r#"[{"get":"count"},{"set":["count",2]},{"fail":"halfway"}]"#);
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stdout).contains(r#"{"get":"count","value":1}"#));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // Without --state, a run starts from nothing and keeps nothing.
    let bare = roost(
        &[
            "run",
            &example("state-probe"),
            "--payload",
            r#"{"steps":[{"get":"count"}]}"#,
        ],
        data.path(),
    );
    assert!(String::from_utf8_lossy(&bare.stdout).contains(r#"{"get":"count","value":null}"#));

    std::fs::write(&file, "[1, 2]").unwrap();
    let broken = run("[]");
    assert_eq!(broken.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains("is not a state file"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// `roost run --request` routes the request to the handler that answers
/// it, prints the response (status and headers on stderr, body on stdout),
/// and refuses a request no handler answers in one line.
#[test]
fn run_tries_an_http_handler_locally() {
    let data = tempfile::tempdir().unwrap();
    let out = roost(
        &[
            "run",
            &example("http-echo"),
            "--request",
            "POST /echo?q=1",
            "--header",
            "X-Test: yes",
            "--body",
            "hello",
        ],
        data.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("roost: HTTP 200"), "{stderr}");
    assert!(stderr.contains("roost:   x-echo: yes"), "{stderr}");
    let echoed: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the body");
    assert_eq!(echoed["path"], "/echo");
    assert_eq!(echoed["query"], "q=1");
    assert_eq!(echoed["body"], "hello");
    assert_eq!(echoed["headers"]["x-test"], "yes");

    let teapot = roost(
        &[
            "run",
            &example("http-echo"),
            "--request",
            "GET /status?code=418",
        ],
        data.path(),
    );
    let stderr = String::from_utf8_lossy(&teapot.stderr);
    assert!(stderr.contains("roost: HTTP 418"), "{stderr}");
    assert!(!stderr.contains("connection:"), "{stderr}");

    let nowhere = roost(
        &["run", &example("http-echo"), "--request", "GET /nowhere"],
        data.path(),
    );
    assert!(!nowhere.status.success());
    let stderr = String::from_utf8_lossy(&nowhere.stderr);
    assert!(
        stderr.contains("no HTTP handler of this script answers GET /nowhere"),
        "{stderr}"
    );
    assert!(stderr.contains("POST /echo"), "{stderr}");
}
