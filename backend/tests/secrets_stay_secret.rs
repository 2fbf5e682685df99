//! No API token or credential value appears in the server's logs or in any
//! response, even with every log level on.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::json;
use support::{Backend, TestApp};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_and_credentials_never_reach_logs_or_responses() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        // Everything roost, the web stack and the database say, at every
        // level; the compiler's own tracing is only noise here.
        .with_env_filter("trace,cranelift_codegen=warn,cranelift_frontend=warn,regalloc2=warn,wasmtime=warn,wasmtime_cranelift=warn,wasmtime_environ=warn,wasmparser=warn")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ada").await;
    let secret = "SG.top-secret-credential-0123456789";
    let mut responses = String::new();

    let (status, body) = app
        .deploy(&token, "welcome", &roost_tests::example("welcome-email"))
        .await;
    assert_eq!(status, 409);
    responses.push_str(&body.to_string());
    let (status, body) = app
        .send(
            Method::PUT,
            &token,
            "/v1/credentials/sendgrid",
            json!({ "values": { "api_key": secret } }),
        )
        .await;
    assert_eq!(status, 200);
    responses.push_str(&body.to_string());
    // A refused write must not echo the value either.
    let (status, body) = app
        .send(
            Method::PUT,
            &token,
            "/v1/credentials/sendgrid",
            json!({ "values": { "api_kee": secret } }),
        )
        .await;
    assert_eq!(status, 400);
    responses.push_str(&body.to_string());
    let (_, body) = app.get(&token, "/v1/credentials").await;
    responses.push_str(&body.to_string());
    let (status, body) = app
        .deploy(&token, "welcome", &roost_tests::example("welcome-email"))
        .await;
    assert_eq!(status, 201);
    responses.push_str(&body.to_string());
    let (_, body) = app.get(&format!("{token}x"), "/v1/scripts").await;
    responses.push_str(&body.to_string());

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("credentials stored"),
        "the flow was logged at all:\n{logs}"
    );
    for needle in [secret, &token, &token["roost_".len()..]] {
        assert!(!logs.contains(needle), "a secret reached the logs");
        assert!(!responses.contains(needle), "a secret reached a response");
    }
}

async fn a_script_cannot_leak_its_credential_through_its_output(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user("ada").await;
    let secret = "SG.leaky-secret-value-98765";
    let (status, _) = app
        .send(
            Method::PUT,
            &token,
            "/v1/credentials/sendgrid",
            json!({ "values": { "api_key": secret } }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, deployed) = app
        .deploy(&token, "leaky", &roost_tests::example("leaky"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let script = deployed["script_id"].as_str().unwrap();
    let (status, run) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{script}/run?wait=true"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(
        run["status"], "failed",
        "the script fails on purpose: {run}"
    );
    let run_id = run["run_id"].as_str().unwrap();

    let marker = roost::runs::masking::MARKER;
    let (_, logs) = app
        .get_text(&token, &format!("/v1/runs/{run_id}/logs"))
        .await;
    let (_, one) = app.get(&token, &format!("/v1/runs/{run_id}")).await;
    let (_, outbox) = app.get(&token, "/v1/messages").await;
    for (what, text) in [
        ("logs", logs.clone()),
        ("the wait response", run.to_string()),
        ("the run", one.to_string()),
        ("the outbox", outbox.to_string()),
    ] {
        assert!(!text.contains(secret), "{what} leaked the key: {text}");
    }
    assert!(logs.contains(&format!("the key is {marker}")), "{logs}");
    // Written in two flushed halves, masked as one.
    assert!(
        run["stderr"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{marker}\n")),
        "{run}"
    );
    assert!(
        run["stderr"]
            .as_str()
            .unwrap()
            .contains(&format!("failing on purpose with {marker}")),
        "{run}"
    );
    assert_eq!(outbox["messages"][0]["body"], format!("psst: {marker}"));
}
on_both_stores!(a_script_cannot_leak_its_credential_through_its_output);
