//! The dashboard chart's figures: a user's runs of the last hour counted in
//! the minute they ended (queued ones in the minute they were queued), by
//! status, one script's alone when asked, never another user's. On SQLite
//! and, when configured, PostgreSQL.

mod support;

use roost::run_stats::{MINUTES, RunStats, StatusCounts};
use roost::store::{NewRun, RunStatus, StatsWindow, TriggerKind, now_millis};
use serde_json::{Value, json};
use support::sdk_app::run_and_wait;
use support::{Backend, TestApp, open_store};

/// Each minute's counts.
fn counts(hour: &roost::run_stats::HourStats) -> Vec<StatusCounts> {
    hour.minutes.iter().map(|m| m.counts).collect()
}

/// The minutes with runs, by their index: what a failure prints.
fn busy(minutes: &[StatusCounts]) -> Vec<(usize, StatusCounts)> {
    minutes
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, c)| c.total() > 0)
        .collect()
}

/// Runs `script` to its end; its status and when it ended.
async fn run(app: &TestApp, token: &str, script: &str) -> (RunStatus, i64) {
    let run = run_and_wait(app, token, script, json!({})).await;
    let status = run["status"].as_str().unwrap().parse().unwrap();
    let finished_at = run["run"]["finished_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("no end: {run}"));
    (status, finished_at)
}

async fn runs_count_in_the_minute_they_ended(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let ada_id = app.user_id(&ada).await;
    let bob_id = app.user_id(&bob).await;
    let hello = app.deploy_example(&ada, "hello", "hello").await;
    // forbidden-egress exits 10 without a URL: a plain failure, not retried
    // (a retry would be queued, and counted as such).
    let (status, deployed) = app
        .deploy_with(
            &ada,
            json!({ "name": "failing", "retries": { "max": 0 },
                    "component": support::b64(&roost_tests::example("forbidden-egress")) }),
        )
        .await;
    assert_eq!(status, 201, "{deployed}");
    let failing = deployed["script_id"].as_str().unwrap().to_string();
    let bobs = app.deploy_example(&bob, "hello", "hello").await;

    let mut adas = Vec::new();
    for (script, expected) in [
        (&hello, RunStatus::Succeeded),
        (&failing, RunStatus::Failed),
        (&hello, RunStatus::Succeeded),
    ] {
        let (status, finished_at) = run(&app, &ada, script).await;
        assert_eq!(status, expected);
        adas.push((script.clone(), status, finished_at));
    }
    for _ in 0..3 {
        assert_eq!(run(&app, &bob, &bobs).await.0, RunStatus::Succeeded);
    }

    let stats = RunStats::new(app.store.clone());
    let hour = stats.last_hour(&ada_id, None, now_millis()).await.unwrap();
    assert_eq!(hour.minutes.len(), MINUTES);
    // Each of Ada's runs in the minute it ended, every other minute empty
    // (the runs may straddle a minute's end).
    let mut expected = vec![StatusCounts::default(); MINUTES];
    for (_, status, finished_at) in &adas {
        let minute = usize::try_from((finished_at - hour.since_ms) / 60_000).unwrap();
        expected[minute].add(*status, 1);
    }
    assert_eq!(busy(&counts(&hour)), busy(&expected));
    // Bob's three runs are not Ada's.
    assert_eq!(
        hour.totals,
        StatusCounts {
            succeeded: 2,
            failed: 1,
            ..StatusCounts::default()
        }
    );
    assert_eq!(hour.durations_read, 3);
    assert!(hour.p50_ms.is_some() && hour.p99_ms >= hour.p50_ms);
    assert!(!hour.durations_capped);

    // One script's runs alone.
    let one = stats
        .last_hour(&ada_id, Some(&failing), now_millis())
        .await
        .unwrap();
    assert_eq!(
        one.totals,
        StatusCounts {
            failed: 1,
            ..StatusCounts::default()
        }
    );
    assert_eq!(one.durations_read, 1);
    // Bob's own.
    let bobs_hour = stats.last_hour(&bob_id, None, now_millis()).await.unwrap();
    assert_eq!(bobs_hour.totals.succeeded, 3);
    assert_eq!(bobs_hour.totals.total(), 3);
    // An hour later, none of them.
    let later = stats
        .last_hour(&ada_id, None, now_millis() + 3_600_000)
        .await
        .unwrap();
    assert_eq!(later.totals.total(), 0);

    // The durations read stop at the cap, the most recent first.
    let found = app
        .store
        .runs_by_minute(&StatsWindow {
            user_id: &ada_id,
            script_id: None,
            since: hour.since_ms,
            until: hour.until_ms,
            max_durations: 2,
        })
        .await
        .unwrap();
    assert!(found.durations_capped);
    let ends: Vec<i64> = found.durations.iter().map(|d| d.finished_at).collect();
    let mut newest: Vec<i64> = adas.iter().map(|(_, _, at)| *at).collect();
    newest.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ends, newest[..2]);
}
on_both_stores!(runs_count_in_the_minute_they_ended);

/// Without workers, queued runs stay queued: counted in the minute they
/// were queued, and once cancelled, in the minute they ended.
async fn queued_runs_count_in_the_minute_they_were_queued(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let ada = store.create_user("ada", "h").await.unwrap();
    let bob = store.create_user("bob", "h2").await.unwrap();
    let script = support::bare_script(store.as_ref(), &ada.id).await;
    let bobs = support::bare_script(store.as_ref(), &bob.id).await;
    let enqueue = |user_id: &str, script_id: &str| NewRun {
        user_id: user_id.into(),
        script_id: script_id.into(),
        script_version: 1,
        handler: None,
        trigger_kind: TriggerKind::Manual,
        trigger_spec: String::new(),
        payload: Value::Null,
        not_before: None,
    };
    let mut queued = Vec::new();
    for _ in 0..3 {
        queued.push(store.enqueue_run(&enqueue(&ada.id, &script)).await.unwrap());
    }
    store.enqueue_run(&enqueue(&bob.id, &bobs)).await.unwrap();
    assert!(store.cancel_run(&ada.id, &queued[0].id).await.unwrap());
    let cancelled = store
        .get_run(&ada.id, &queued[0].id)
        .await
        .unwrap()
        .unwrap();

    let hour = RunStats::new(store.clone())
        .last_hour(&ada.id, None, now_millis())
        .await
        .unwrap();
    let minute_of = |at: i64| usize::try_from((at - hour.since_ms) / 60_000).unwrap();
    let mut expected = vec![StatusCounts::default(); MINUTES];
    for run in &queued[1..] {
        expected[minute_of(run.queued_at)].add(RunStatus::Queued, 1);
    }
    expected[minute_of(cancelled.finished_at.unwrap())].add(RunStatus::Cancelled, 1);
    assert_eq!(busy(&counts(&hour)), busy(&expected));
    assert_eq!(hour.totals.total(), 3, "Bob's queued run is not Ada's");
    // A cancelled run has no duration to count.
    assert_eq!((hour.durations_read, hour.p50_ms), (0, None));
    drop(store);
}
on_both_stores!(queued_runs_count_in_the_minute_they_were_queued);
