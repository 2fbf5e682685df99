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
        .with_env_filter(roost::logging::guarded(tracing_subscriber::EnvFilter::new(
            "trace,cranelift_codegen=warn,cranelift_frontend=warn,regalloc2=warn,wasmtime=warn,\
             wasmtime_cranelift=warn,wasmtime_environ=warn,wasmparser=warn,wasmtime_wasi_http=trace",
        )))
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
    // A key too short to be masked in run output is refused, not stored.
    let (status, body) = app
        .send(
            Method::PUT,
            &token,
            "/v1/credentials/openai",
            json!({ "values": { "api_key": "sk-1" } }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_credential");
    assert!(!body.to_string().contains("sk-1"), "{body}");
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

    // A script that sends a request to a host and path built from its key:
    // refused, recorded on the run (masked), and in no log.
    let (status, deployed) = app
        .deploy(&token, "leaky", &roost_tests::example("leaky"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let leaky = deployed["script_id"].as_str().unwrap();
    let (status, run) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{leaky}/run?wait=true"),
            json!({ "payload": { "egress": true, "succeed": true } }),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert!(
        run["stderr"].as_str().unwrap().contains("egress: true"),
        "{run}"
    );
    let error = run["run"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("outbound requests denied"), "{run}");
    let host_form = secret.to_ascii_lowercase().replace('.', "-");

    // A setup link's signature is a secret of its own: opening one leaves
    // it in no log either.
    let (status, refused) = app
        .deploy_with(&token, json!({
            "name": "needs-key",
            "component": support::b64(&support::bare_module()),
            "metadata": { "integrations": ["openai"], "triggers": [{ "name": "run", "trigger": { "kind": "manual" } }] },
        }))
        .await;
    assert_eq!(status, 409, "{refused}");
    let link = refused["error"]["details"]["missing"][0]["setup_url"]
        .as_str()
        .unwrap()
        .to_string();
    let sig = link.rsplit_once("sig=").unwrap().1.to_string();
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), 200);

    // An HTTP handler's URL token (a public handler's secret), and an API
    // token sent to a bearer handler, stay out of the logs too.
    let (status, deployed) = app
        .deploy(&token, "echo", &roost_tests::example("http-echo"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let script = deployed["script_id"].as_str().unwrap();
    let (_, listed) = app.get(&token, &format!("/v1/scripts/{script}/http")).await;
    let url_of = |handler: &str| {
        listed["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["handler"] == handler)
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let status_url = url_of("status");
    let answered = app.client.get(&status_url).send().await.unwrap();
    assert_eq!(answered.status(), 200);
    let private = app
        .client
        .get(url_of("private"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), 200);
    let url_token = status_url
        .split("/h/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        !logs.contains(&url_token),
        "an HTTP handler's URL token reached the logs"
    );
    assert!(
        logs.contains("credentials stored"),
        "the flow was logged at all:\n{logs}"
    );
    assert!(
        logs.contains("a run's requests were denied"),
        "the refusal was logged at all"
    );
    for needle in [secret, &token, &token["roost_".len()..]] {
        assert!(!logs.contains(needle), "a secret reached the logs");
        assert!(!responses.contains(needle), "a secret reached a response");
    }
    let leaked: Vec<&str> = logs.lines().filter(|l| l.contains(&host_form)).collect();
    assert!(
        leaked.is_empty(),
        "the key, as a host name, reached the logs: {leaked:#?}"
    );
    assert!(
        !logs.contains(&sig),
        "a setup link's signature reached the logs"
    );
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

    let marker = roost::execute::masking::MARKER;
    let (_, logs) = app
        .get_text(&token, &format!("/v1/runs/{run_id}/logs"))
        .await;
    let (_, one) = app.get(&token, &format!("/v1/runs/{run_id}")).await;
    // A failed run keeps no outbox message; the same script ending well does.
    let (_, outbox) = app.get(&token, "/v1/messages").await;
    assert_eq!(outbox["messages"], json!([]), "{outbox}");
    let (status, succeeded) = app
        .send(
            Method::POST,
            &token,
            &format!("/v1/scripts/{script}/run?wait=true"),
            json!({ "payload": { "succeed": true } }),
        )
        .await;
    assert_eq!(status, 200, "{succeeded}");
    assert_eq!(succeeded["status"], "succeeded", "{succeeded}");
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

async fn the_audit_trail_shows_a_users_own_credential_reads_and_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    for (integration, value) in [
        ("sendgrid", "SG.ada-audit-key"),
        ("openai", "sk-ada-audit-key"),
    ] {
        let (status, _) = app
            .send(
                Method::PUT,
                &ada,
                &format!("/v1/credentials/{integration}"),
                json!({ "values": { "api_key": value } }),
            )
            .await;
        assert_eq!(status, 200);
    }
    app.send(
        Method::PUT,
        &bob,
        "/v1/credentials/sendgrid",
        json!({ "values": { "api_key": "SG.bob-audit-key" } }),
    )
    .await;
    let (_, deployed) = app
        .deploy(&ada, "report", &roost_tests::example("env-report"))
        .await;
    let script = deployed["script_id"].as_str().unwrap();
    let (_, run) = app
        .send(
            Method::POST,
            &ada,
            &format!("/v1/scripts/{script}/run?wait=true"),
            json!({}),
        )
        .await;
    let run_id = run["run_id"].as_str().unwrap();
    let (status, _) = app
        .send(Method::DELETE, &ada, "/v1/credentials/openai", json!(null))
        .await;
    assert_eq!(status, 204);

    let (status, audit) = app.get(&ada, "/v1/audit").await;
    assert_eq!(status, 200, "{audit}");
    let entries: Vec<(String, String, Option<String>)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["integration"].as_str().unwrap().to_string(),
                e["run_id"].as_str().map(str::to_string),
            )
        })
        .collect();
    let has = |action: &str, integration: &str, run: Option<&str>| {
        entries
            .iter()
            .any(|(a, i, r)| a == action && i == integration && r.as_deref() == run)
    };
    assert!(has("credential.stored", "sendgrid", None), "{audit}");
    assert!(has("credential.stored", "openai", None), "{audit}");
    assert!(
        has("credential.read_for_run", "sendgrid", Some(run_id)),
        "{audit}"
    );
    assert!(
        has("credential.read_for_run", "openai", Some(run_id)),
        "{audit}"
    );
    assert!(has("credential.deleted", "openai", None), "{audit}");
    assert_eq!(entries.len(), 5, "{audit}");
    let text = audit.to_string();
    assert!(!text.contains("SG.ada-audit-key") && !text.contains("sk-ada-audit-key"));
    assert!(!text.contains("bob"), "{audit}");

    // Bob sees his own store, nothing of Ada's.
    let (_, theirs) = app.get(&bob, "/v1/audit").await;
    let theirs = theirs["entries"].as_array().unwrap();
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0]["action"], "credential.stored");
    assert_eq!(theirs[0]["run_id"], serde_json::Value::Null);
    let (status, _) = app
        .client
        .get(format!("{}/v1/audit", app.base))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401);
}
on_both_stores!(the_audit_trail_shows_a_users_own_credential_reads_and_changes);
