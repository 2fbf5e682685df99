//! A run's output read while the guest still runs, through an
//! `OutputProbe`: what roost's workers store as a run goes.

mod support;

use std::time::{Duration, Instant};

use roost_sandbox::{EgressPolicy, OutputProbe, RunLimits};
use support::{invocation, load, sandbox};

#[tokio::test]
async fn a_probe_sees_output_before_the_run_ends() {
    let sandbox = std::sync::Arc::new(sandbox());
    let guest = load(&sandbox, "slow-printer");
    let probe = OutputProbe::new();
    assert!(probe.snapshot().is_none(), "nothing to see before the run");
    let mut invocation = invocation(&[], serde_json::json!({ "lines": 2, "pause_ms": 400 }));
    invocation.output_probe = Some(probe.clone());
    let run = tokio::spawn({
        let sandbox = sandbox.clone();
        async move {
            sandbox
                .run(
                    &guest,
                    &invocation,
                    &RunLimits::default(),
                    &EgressPolicy::deny_all(),
                )
                .await
                .expect("the run starts")
        }
    });

    // The first lines show while the guest sleeps after them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (stdout, stderr) = loop {
        if let Some((stdout, stderr)) = probe.snapshot()
            && !stdout.bytes.is_empty()
            && !stderr.bytes.is_empty()
        {
            break (stdout, stderr);
        }
        assert!(Instant::now() < deadline, "no output seen while running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!run.is_finished(), "the run should still be sleeping");
    assert_eq!(stdout.to_text(), "line 1\n");
    assert_eq!(stderr.to_text(), "note 1\n");
    assert_eq!(probe.written(), Some((7, 7)));

    let outcome = run.await.unwrap();
    assert!(outcome.succeeded(), "{}", outcome.summary());
    assert_eq!(outcome.stdout.to_text(), "line 1\nline 2\ndone\n");
    // After the run the probe holds what the outcome does.
    let (stdout, stderr) = probe.snapshot().unwrap();
    assert_eq!(stdout, outcome.stdout);
    assert_eq!(stderr, outcome.stderr);
}
