//! Tests of `host_services.rs`.

use super::*;
use crate::connectors::{CallError, HostCredential, TransportPolicy};
use crate::registry::{IntegrationDefinition, Registry, RunProfiles};

/// A user with nothing connected.
struct NoCredentials;

#[async_trait::async_trait]
impl CredentialSource for NoCredentials {
    async fn credential(
        &self,
        _: &str,
        _: &IntegrationDefinition,
    ) -> Result<Option<HostCredential>, CallError> {
        Ok(None)
    }
    async fn credential_refused(
        &self,
        _: &str,
        _: &IntegrationDefinition,
        _: &HostCredential,
    ) -> Result<HostCredential, CallError> {
        Err(CallError::NotConnected {
            message: "nothing is connected".into(),
        })
    }
}

fn deps(store: Arc<dyn Store>) -> ServiceDeps {
    let registry = Registry::load(None).unwrap();
    let profiles = RunProfiles::build(&registry, &Default::default()).unwrap();
    ServiceDeps {
        store,
        connectors: Arc::new(
            Connectors::new(&registry, &profiles, TransportPolicy::default()).unwrap(),
        ),
        credentials: Arc::new(NoCredentials),
        state_quota: StateQuota::default(),
        emit_limits: Default::default(),
    }
}

fn post(body: &str) -> HostRequest {
    HostRequest {
        method: "POST".into(),
        path: "/v1/messages".into(),
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

/// A fresh store with user `ada`, and run `run_1` of hers (not stored).
async fn store_with_a_run() -> (tempfile::TempDir, Arc<dyn Store>, RunRow) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::connect(&crate::config::sqlite_url(dir.path()))
        .await
        .unwrap();
    let user = store.create_user("ada", "hash").await.unwrap();
    let run = RunRow {
        id: "run_1".into(),
        user_id: user.id,
        script_id: "scr_1".into(),
        ..RunRow::default()
    };
    (dir, store, run)
}

#[tokio::test]
async fn the_outbox_refuses_what_it_must_and_keeps_nothing_then() {
    let (_dir, store, run) = store_with_a_run().await;
    let undeclared = RunServices::new(
        deps(store.clone()),
        &run,
        &["slack".into()],
        &[],
        Masker::default(),
        Default::default(),
    );
    let answer = undeclared.handle(post(r#"{"body":"hi"}"#)).await;
    assert_eq!(answer.status, 403);
    assert!(String::from_utf8_lossy(&answer.body).contains("integration_not_declared"));

    let services = RunServices::new(
        deps(store.clone()),
        &run,
        &["messaging".into()],
        &[],
        Masker::default(),
        Default::default(),
    );
    for (body, status) in [
        (r#"{"body":"hi","colour":"red"}"#, 400),
        (r#"{"body":""}"#, 400),
        (r#"{"subject":"no body"}"#, 400),
        ("not json", 400),
    ] {
        assert_eq!(services.handle(post(body)).await.status, status, "{body}");
    }
    let elsewhere = HostRequest {
        method: "GET".into(),
        path: "/v1/credentials".into(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    assert_eq!(services.handle(elsewhere).await.status, 404);
    assert_eq!(services.kept_messages(), 0);

    // Host calls: only declared integrations, only real methods.
    let call = |path: &str| HostRequest {
        method: "POST".into(),
        path: path.into(),
        headers: Vec::new(),
        body: br#"{"channel":"C1","text":"hi"}"#.to_vec(),
    };
    for (path, status, code) in [
        (
            "/v1/integrations/slack/post_message",
            403,
            "integration_not_declared",
        ),
        (
            "/v1/integrations/nope/post_message",
            404,
            "unknown_integration",
        ),
        ("/v1/integrations/slack/a/b", 404, "not_found"),
    ] {
        let answer = services.handle(call(path)).await;
        assert_eq!(answer.status, status, "{path}");
        assert!(
            String::from_utf8_lossy(&answer.body).contains(code),
            "{path}"
        );
    }
    let slack_user = RunServices::new(
        deps(store.clone()),
        &run,
        &["slack".into()],
        &[],
        Masker::default(),
        Default::default(),
    );
    let answer = slack_user
        .handle(call("/v1/integrations/slack/explode"))
        .await;
    assert_eq!(answer.status, 404);
    assert!(String::from_utf8_lossy(&answer.body).contains("post_message"));
    // messaging's method through the generic route reaches the outbox.
    let answer = services
        .handle(HostRequest {
            body: br#"{"body":"via call"}"#.to_vec(),
            ..call("/v1/integrations/messaging/send_message")
        })
        .await;
    assert_eq!(answer.status, 201);
    assert_eq!(services.kept_messages(), 1);
    let answer = services.handle(post(r#"{"body":"hi"}"#)).await;
    assert_eq!(answer.status, 201);

    for _ in 2..MAX_MESSAGES_PER_RUN {
        assert_eq!(services.handle(post(r#"{"body":"hi"}"#)).await.status, 201);
    }
    let answer = services.handle(post(r#"{"body":"one too many"}"#)).await;
    assert_eq!(answer.status, 429);
    let effects = services.take_effects();
    assert_eq!(effects.messages.len(), MAX_MESSAGES_PER_RUN as usize);
    assert!(effects.messages.iter().all(|m| m.run_id == "run_1"));
    assert!(services.take_effects().is_empty(), "taken once");
}

/// A script cannot have a credential marked refused on its word alone:
/// roost must have seen one of the integration's hosts answer 401.
#[tokio::test]
async fn a_refusal_counts_only_after_the_integration_answered_401() {
    let (_dir, store, run) = store_with_a_run().await;
    let registry = Registry::load(None).unwrap();
    let definition = registry.get("sendgrid").unwrap().clone();
    let placement = definition.credentials[0].placement.clone().unwrap();
    let mut given = GivenCredentials::new();
    given.insert(
        "sendgrid".into(),
        super::super::refusals::Given {
            definition,
            values: HostCredential {
                parts: vec![(placement.clone(), "SG.key-of-ada".into())],
            },
            env_vars: vec![(placement, "SENDGRID_API_KEY".into())],
            hosts: roost_sandbox::EgressPolicy::allow_hosts(["api.sendgrid.com"]),
        },
    );
    let services = RunServices::new(
        deps(store.clone()),
        &run,
        &["sendgrid".into(), "messaging".into()],
        &[],
        Masker::default(),
        given,
    );
    let refused = |integration: &str| HostRequest {
        method: "POST".into(),
        path: format!("/v1/credentials/{integration}/refused"),
        headers: Vec::new(),
        body: Vec::new(),
    };
    let code = |answer: &HostResponse| {
        serde_json::from_slice::<serde_json::Value>(&answer.body).unwrap()["error"]["code"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let answer = services.handle(refused("sendgrid")).await;
    assert_eq!(
        (answer.status, code(&answer).as_str()),
        (409, "no_refusal_seen")
    );
    services.response_seen("api.sendgrid.com", 443, 200);
    services.response_seen("evil.example", 443, 401);
    let answer = services.handle(refused("sendgrid")).await;
    assert_eq!(
        (answer.status, code(&answer).as_str()),
        (409, "no_refusal_seen")
    );
    assert!(services.notes().is_empty());

    services.response_seen("api.sendgrid.com", 443, 401);
    let answer = services.handle(refused("sendgrid")).await;
    assert_eq!(
        (answer.status, code(&answer).as_str()),
        (503, "not_connected")
    );
    assert_eq!(services.notes(), ["sendgrid: nothing is connected"]);
    // Once per run: a script cannot report the same refusal again and again.
    let answer = services.handle(refused("sendgrid")).await;
    assert_eq!(
        (answer.status, code(&answer).as_str()),
        (409, "already_reported")
    );
    let answer = services.handle(refused("slack")).await;
    assert_eq!(
        (answer.status, code(&answer).as_str()),
        (403, "integration_not_declared")
    );
    let answer = services.handle(refused("messaging")).await;
    assert_eq!(
        (answer.status, code(&answer).as_str()),
        (404, "no_credential")
    );
}
