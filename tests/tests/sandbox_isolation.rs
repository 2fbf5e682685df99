//! What a guest can see of the host: exactly the env it is given, no files,
//! and its invocation on stdin.

mod support;

use roost_sandbox::{EgressPolicy, RunLimits, Termination, Trigger};
use serde_json::json;
use support::{invocation, load, sandbox};

fn env_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("env ")).collect()
}

#[tokio::test]
async fn guest_sees_exactly_the_given_env_and_none_of_the_hosts() {
    // The test process certainly has these; the guest must not.
    assert!(std::env::var_os("PATH").is_some());
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());

    let sandbox = sandbox();
    let guest = load(&sandbox, "hello");
    let inv = invocation(
        &[
            ("GMAIL_ACCESS_TOKEN", "tok-123"),
            ("EMPTY", ""),
            ("SPACED", "a b=c"),
        ],
        json!(null),
    );
    let outcome = sandbox
        .run(
            &guest,
            &inv,
            &RunLimits::default(),
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert!(outcome.succeeded(), "{outcome:?}");
    let stdout = outcome.stdout.to_text();
    assert_eq!(
        env_lines(&stdout),
        [
            "env EMPTY=",
            "env GMAIL_ACCESS_TOKEN=tok-123",
            "env SPACED=a b=c"
        ]
    );
}

#[tokio::test]
async fn guest_with_no_env_sees_none() {
    let sandbox = sandbox();
    let guest = load(&sandbox, "hello");
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!(null)),
            &RunLimits::default(),
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert!(
        env_lines(&outcome.stdout.to_text()).is_empty(),
        "{}",
        outcome.stdout.to_text()
    );
}

#[tokio::test]
async fn invocation_reaches_the_named_handler() {
    let sandbox = sandbox();
    let guest = load(&sandbox, "hello");
    let mut inv = invocation(
        &[],
        json!({ "order": { "id": 42, "note": "ünïcode \"quoted\"" } }),
    );
    inv.trigger = Some(Trigger::Event {
        name: "order.created".into(),
    });
    let outcome = sandbox
        .run(
            &guest,
            &inv,
            &RunLimits::default(),
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    let stdout = outcome.stdout.to_text();
    assert!(
        stdout.contains("trigger Event { name: \"order.created\" }"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"payload {"order":{"id":42,"note":"ünïcode \"quoted\""}}"#),
        "{stdout}"
    );

    let heartbeat = load(&sandbox, "heartbeat");
    let mut tick = invocation(&[], json!(null));
    tick.handler = Some("beat".into());
    tick.trigger = Some(Trigger::Schedule {
        cron: "0 */5 * * * *".into(),
        timezone: None,
    });
    let outcome = sandbox
        .run(
            &heartbeat,
            &tick,
            &RunLimits::default(),
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(
        outcome.stdout.to_text(),
        "heartbeat: tick of `0 */5 * * * *`\n"
    );

    // Several handlers and none named: the SDK refuses to guess.
    let outcome = sandbox
        .run(
            &heartbeat,
            &invocation(&[], json!(null)),
            &RunLimits::default(),
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.termination, Termination::Exited { code: 2 });
    assert!(
        outcome
            .stderr
            .to_text()
            .contains("name one of: beat, status")
    );
}
