//! Every limit, exceeded by its hostile example guest, ends the run with its
//! own outcome, and the sandbox keeps serving normal runs afterwards.

mod support;

use std::time::Duration;

use roost_sandbox::{EgressPolicy, Limit, RunLimits, Sandbox, SandboxConfig, Termination};
use serde_json::json;
use support::{invocation, load, sandbox};

fn limits() -> RunLimits {
    RunLimits {
        timeout: Duration::from_secs(10),
        max_memory_bytes: 64 * 1024 * 1024,
        max_output_bytes: 64 * 1024,
        fuel: None,
    }
}

async fn assert_healthy(sandbox: &Sandbox) {
    let hello = load(sandbox, "hello");
    let outcome = sandbox
        .run(
            &hello,
            &invocation(&[], json!(null)),
            &limits(),
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert!(
        outcome.succeeded(),
        "hello after a hostile guest: {outcome:?}"
    );
    assert!(outcome.stdout.to_text().contains("hello from roost"));
}

#[tokio::test]
async fn infinite_loop_is_stopped_at_the_wall_clock_limit() {
    let sandbox = sandbox();
    let guest = load(&sandbox, "infinite-loop");
    let limits = RunLimits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!(null)),
            &limits,
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.limit(), Some(Limit::WallTime), "{outcome:?}");
    assert!(outcome.duration >= Duration::from_millis(300));
    assert!(
        outcome.duration < Duration::from_secs(5),
        "stopped late: {:?}",
        outcome.duration
    );
    assert_healthy(&sandbox).await;
}

#[tokio::test]
async fn guest_blocked_in_a_host_call_is_stopped_by_the_outer_timeout() {
    let sandbox = sandbox();
    let guest = load(&sandbox, "sleeper");
    let limits = RunLimits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!(null)),
            &limits,
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.limit(), Some(Limit::WallTime), "{outcome:?}");
    assert!(
        outcome.duration < Duration::from_secs(5),
        "stopped late: {:?}",
        outcome.duration
    );
    assert!(!outcome.stdout.to_text().contains("woke up"));
    assert_healthy(&sandbox).await;
}

#[tokio::test]
async fn memory_hog_hits_the_memory_limit() {
    let sandbox = sandbox();
    let guest = load(&sandbox, "memory-hog");
    let limits = RunLimits {
        max_memory_bytes: 32 * 1024 * 1024,
        ..limits()
    };
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!(null)),
            &limits,
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.limit(), Some(Limit::Memory), "{outcome:?}");
    assert_healthy(&sandbox).await;
}

#[tokio::test]
async fn output_flood_is_cut_at_the_cap_and_marked() {
    let sandbox = sandbox();
    let guest = load(&sandbox, "output-flood");
    let limits = RunLimits {
        max_output_bytes: 16 * 1024,
        ..limits()
    };
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!(null)),
            &limits,
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.limit(), Some(Limit::Output), "{outcome:?}");
    assert_eq!(outcome.stdout.bytes.len(), 16 * 1024);
    assert!(outcome.stdout.truncated);
    assert!(
        outcome
            .stdout
            .to_text()
            .ends_with("[roost: output truncated at 16384 bytes]\n")
    );
    assert!(outcome.stdout.to_text().starts_with("flood line 0:"));
    assert_healthy(&sandbox).await;
}

#[tokio::test]
async fn small_output_is_not_marked_truncated() {
    let sandbox = sandbox();
    let guest = load(&sandbox, "hello");
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!(null)),
            &limits(),
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert!(outcome.succeeded());
    assert!(!outcome.stdout.truncated);
    assert!(!outcome.stdout.to_text().contains("truncated"));
}

#[tokio::test]
async fn deep_recursion_exhausts_the_stack() {
    let sandbox = sandbox();
    let guest = load(&sandbox, "deep-recursion");
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!(null)),
            &limits(),
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.limit(), Some(Limit::Stack), "{outcome:?}");
    assert_healthy(&sandbox).await;
}

#[tokio::test]
async fn fuel_budget_stops_a_busy_guest() {
    let sandbox = Sandbox::new(SandboxConfig {
        fuel_metering: true,
        ..SandboxConfig::default()
    })
    .unwrap();
    let guest = load(&sandbox, "infinite-loop");
    let limits = RunLimits {
        fuel: Some(5_000_000),
        ..limits()
    };
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!(null)),
            &limits,
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.limit(), Some(Limit::Fuel), "{outcome:?}");
    assert_eq!(outcome.fuel_consumed, Some(5_000_000));
    assert_healthy(&sandbox).await;

    // The same engine gives an unmetered run all the fuel it needs.
    let hello = load(&sandbox, "hello");
    let outcome = sandbox
        .run(
            &hello,
            &invocation(&[], json!(null)),
            &RunLimits::default(),
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert!(outcome.succeeded());
}

#[tokio::test]
async fn fuel_budget_without_metering_is_refused() {
    let sandbox = sandbox();
    let guest = load(&sandbox, "hello");
    let limits = RunLimits {
        fuel: Some(1),
        ..limits()
    };
    let err = sandbox
        .run(
            &guest,
            &invocation(&[], json!(null)),
            &limits,
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fuel_metering"), "{err}");
}

#[tokio::test]
async fn unknown_handler_exits_2_listing_the_handlers() {
    // Asking for a handler that does not exist makes the SDK exit 2 and list them.
    let sandbox = sandbox();
    let guest = load(&sandbox, "heartbeat");
    let mut inv = invocation(&[], json!(null));
    inv.handler = Some("nope".into());
    let outcome = sandbox
        .run(&guest, &inv, &limits(), &EgressPolicy::deny_all())
        .await
        .unwrap();
    assert_eq!(outcome.termination, Termination::Exited { code: 2 });
    assert!(
        outcome.stderr.to_text().contains("beat, status"),
        "{}",
        outcome.stderr.to_text()
    );
}

#[tokio::test]
async fn concurrent_runs_are_isolated() {
    let sandbox = std::sync::Arc::new(sandbox());
    let guest = load(&sandbox, "hello");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let sandbox = sandbox.clone();
        let guest = guest.clone();
        tasks.push(tokio::spawn(async move {
            let value = format!("value-{i}");
            let outcome = sandbox
                .run(
                    &guest,
                    &invocation(&[("RUN", &value)], json!({ "i": i })),
                    &limits(),
                    &EgressPolicy::deny_all(),
                )
                .await
                .unwrap();
            (i, outcome)
        }));
    }
    for task in tasks {
        let (i, outcome) = task.await.unwrap();
        let text = outcome.stdout.to_text();
        assert!(text.contains(&format!("env RUN=value-{i}\n")), "{text}");
        assert!(text.contains(&format!("payload {{\"i\":{i}}}")), "{text}");
        assert_eq!(text.matches("env RUN=").count(), 1);
    }
}
