//! A run's output while it runs: written to its row as it grows (GET
//! /v1/runs/{id}/logs shows it), followed as server-sent events (GET
//! /v1/runs/{id}/stream) and with `roost logs --follow`; masked like the
//! final output. On SQLite and, when configured, PostgreSQL.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::process::text;
use support::{Backend, TestApp};

const SECRET: &str = "SG.live-secret-value-24680";

/// A server writing running runs' output every 100 ms, and a user with a
/// SendGrid key (slow-printer declares sendgrid) and slow-printer deployed;
/// the user's token and the script.
async fn app_with_printer(backend: Backend) -> (TestApp, String, String) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.output_flush = Duration::from_millis(100);
    })
    .await;
    let token = app.user("ada").await;
    let (status, _) = app
        .send(
            Method::PUT,
            &token,
            "/v1/credentials/sendgrid",
            json!({ "values": { "api_key": SECRET } }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, deployed) = app
        .deploy(&token, "printer", &roost_tests::example("slow-printer"))
        .await;
    assert_eq!(status, 201, "{deployed}");
    let script = deployed["script_id"].as_str().unwrap().to_string();
    (app, token, script)
}

/// Starts a run of `script` with `payload`, without waiting; its id.
async fn start(app: &TestApp, token: &str, script: &str, payload: Value) -> String {
    let (status, run) = app
        .send(
            Method::POST,
            token,
            &format!("/v1/scripts/{script}/run"),
            json!({ "payload": payload }),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    run["run_id"].as_str().unwrap().to_string()
}

async fn status_of(app: &TestApp, token: &str, run: &str) -> String {
    let (_, one) = app.get(token, &format!("/v1/runs/{run}")).await;
    one["run"]["status"].as_str().unwrap().to_string()
}

/// One server-sent event: its name and its data as JSON.
#[derive(Debug)]
struct Sse {
    name: String,
    data: Value,
}

/// Reads the stream of `run` until it closes; its events, and the raw text.
async fn read_stream(app: &TestApp, token: &str, run: &str) -> (Vec<Sse>, String) {
    let mut response = app
        .client
        .get(format!("{}/v1/runs/{run}/stream", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut raw = String::new();
    let read = async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            raw.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the stream closes once the run has ended");
    let events = raw
        .split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = Some(value.to_string());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(value).unwrap());
                }
            }
            Some(Sse {
                name: name?,
                data: data?,
            })
        })
        .collect();
    (events, raw)
}

/// One stream's output put together from `output` events, as a client does.
fn assemble(events: &[Sse], stream: &str) -> String {
    let mut text = String::new();
    for event in events
        .iter()
        .filter(|e| e.name == "output" && e.data["stream"] == stream)
    {
        let chunk = event.data["text"].as_str().unwrap();
        if event.data["reset"] == true {
            text = chunk.to_string();
        } else {
            assert_eq!(event.data["offset"], text.len(), "{:?}", event.data);
            text.push_str(chunk);
        }
    }
    text
}

async fn output_shows_while_the_run_goes_and_the_stream_ends_with_it(backend: Backend) {
    let (app, token, script) = app_with_printer(backend).await;
    let run = start(
        &app,
        &token,
        &script,
        json!({ "lines": 3, "pause_ms": 700 }),
    )
    .await;

    // The first line is stored while the script sleeps after it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let logs = loop {
        let (status, logs) = app.get_text(&token, &format!("/v1/runs/{run}/logs")).await;
        assert_eq!(status, 200);
        if logs.contains("line 1\n") {
            break logs;
        }
        assert!(Instant::now() < deadline, "no output while running: {logs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(logs.contains("note 1\n"), "{logs}");
    assert!(!logs.contains("done"), "{logs}");
    assert_eq!(status_of(&app, &token, &run).await, "running");

    // Followed from here: what was printed, then the rest as it comes.
    let (events, _) = read_stream(&app, &token, &run).await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"status"), "{names:?}");
    assert_eq!(events[0].data["status"], "running");
    assert_eq!(events[0].data["run_id"], run.as_str());
    let first_output = events.iter().find(|e| e.name == "output").unwrap();
    assert!(
        !first_output.data["text"].as_str().unwrap().contains("done"),
        "the first output came while running: {events:?}"
    );
    let outputs = names.iter().filter(|n| **n == "output").count();
    assert!(outputs >= 3, "output arrived in pieces: {names:?}");
    assert_eq!(
        assemble(&events, "stdout"),
        "line 1\nline 2\nline 3\ndone\n"
    );
    assert_eq!(assemble(&events, "stderr"), "note 1\nnote 2\nnote 3\n");
    // The end: the final status, then `end`, and nothing after.
    let [.., last_status, end] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(last_status.name, "status");
    assert_eq!(last_status.data["status"], "succeeded");
    assert_eq!(end.name, "end");
    assert_eq!(end.data["status"], "succeeded");
    assert_eq!(end.data["exit_code"], 0);
    assert!(end.data["finished_at"].as_i64().is_some(), "{:?}", end.data);

    // A finished run's stream tells it all at once.
    let (again, _) = read_stream(&app, &token, &run).await;
    let names: Vec<&str> = again.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["output", "output", "status", "end"]);
    assert_eq!(assemble(&again, "stdout"), "line 1\nline 2\nline 3\ndone\n");
}
on_both_stores!(output_shows_while_the_run_goes_and_the_stream_ends_with_it);

async fn a_credential_printed_mid_run_is_masked_in_the_partial_output(backend: Backend) {
    let (app, token, script) = app_with_printer(backend).await;
    let marker = roost::execute::masking::MARKER;
    let head = &SECRET[..SECRET.len() / 2];
    let payload = json!({ "lines": 2, "pause_ms": 600, "leak": true });
    let run = start(&app, &token, &script, payload).await;
    let follower = {
        let (client, base, token, run) = (
            app.client.clone(),
            app.base.clone(),
            token.clone(),
            run.clone(),
        );
        tokio::spawn(async move {
            let mut response = client
                .get(format!("{base}/v1/runs/{run}/stream"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let mut raw = String::new();
            while let Some(chunk) = response.chunk().await.unwrap() {
                raw.push_str(&String::from_utf8_lossy(&chunk));
            }
            raw
        })
    };

    // Every look at the output while the run goes on.
    let mut partial = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while status_of(&app, &token, &run).await != "succeeded" {
        assert!(Instant::now() < deadline, "the run did not end");
        let (_, logs) = app.get_text(&token, &format!("/v1/runs/{run}/logs")).await;
        partial.push(logs);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let raw = tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .unwrap()
        .unwrap();
    for text in partial.iter().chain([&raw]) {
        assert!(!text.contains(head), "the key's first half leaked: {text}");
    }
    // Its first half alone ended the output for a while, masked.
    assert!(
        partial
            .iter()
            .any(|logs| logs.contains(&format!("half key {marker}")) && !logs.contains("done")),
        "{partial:#?}"
    );
    assert!(
        partial
            .iter()
            .any(|logs| logs.contains(&format!("whole key {marker}\n")) && !logs.contains("done")),
        "{partial:#?}"
    );
    let (_, logs) = app.get_text(&token, &format!("/v1/runs/{run}/logs")).await;
    assert!(!logs.contains(head), "{logs}");
    assert!(logs.contains(&format!("half key {marker}\n")), "{logs}");
    assert!(raw.contains("event: end"), "{raw}");
}
on_both_stores!(a_credential_printed_mid_run_is_masked_in_the_partial_output);

async fn a_stream_is_only_its_owners(backend: Backend) {
    let (app, token, script) = app_with_printer(backend).await;
    let bob = app.user("bob").await;
    let run = start(&app, &token, &script, json!({ "lines": 1, "pause_ms": 10 })).await;

    let url = format!("{}/v1/runs/{run}/stream", app.base);
    let anonymous = app.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let (status, not_found) = app.get(&bob, &format!("/v1/runs/{run}")).await;
    assert_eq!(status, 404);
    for (who, path) in [
        (&bob, format!("/v1/runs/{run}/stream")),
        (&token, "/v1/runs/run_nope/stream".to_string()),
    ] {
        let (status, body) = app.get(who, &path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body, not_found, "the same answer as GET /v1/runs/{{id}}");
    }
}
on_both_stores!(a_stream_is_only_its_owners);

async fn output_so_far_is_written_only_by_the_runs_worker_while_it_runs(backend: Backend) {
    use roost::store::{NewRun, NextClaim, PartialOutput, RunReport, TriggerKind};
    let dir = tempfile::tempdir().unwrap();
    let store = support::open_store(backend, dir.path()).await;
    let user = store.create_user("ada", "h").await.unwrap();
    let script = support::bare_script(store.as_ref(), &user.id).await;
    let new_run = NewRun {
        user_id: user.id.clone(),
        script_id: script,
        script_version: 1,
        handler: None,
        trigger_kind: TriggerKind::Manual,
        trigger_spec: String::new(),
        payload: Value::Null,
        not_before: None,
    };
    let queued = [
        store.enqueue_run(&new_run).await.unwrap(),
        store.enqueue_run(&new_run).await.unwrap(),
    ];
    let so_far = PartialOutput {
        stdout: b"so far\n".to_vec(),
        stderr: b"note\n".to_vec(),
        output_cap: 1024,
        ..PartialOutput::default()
    };
    let logs = |run: String| {
        let (store, user) = (store.clone(), user.id.clone());
        async move { store.run_logs(&user, &run).await.unwrap().unwrap() }
    };
    // Queued: nobody's to write.
    assert!(
        !store
            .write_partial_output(&queued[0].id, "w0", &so_far)
            .await
            .unwrap()
    );
    // Queued in the same millisecond, they may be claimed in either order.
    let first = store.claim_run("w0", 10, &[]).await.unwrap().unwrap();
    let second = queued.into_iter().find(|run| run.id != first.id).unwrap();
    assert!(
        !store
            .write_partial_output(&first.id, "w1", &so_far)
            .await
            .unwrap()
    );
    assert!(
        store
            .write_partial_output(&first.id, "w0", &so_far)
            .await
            .unwrap()
    );
    assert_eq!(logs(first.id.clone()).await.stdout, b"so far\n");
    assert_eq!(logs(first.id.clone()).await.stderr, b"note\n");

    // Finished (and the next run handed out, its start held on SQLite):
    // the finish's output stands, and the next run's worker writes its own.
    store.hold_run_starts(Duration::from_secs(600));
    let mut finish = support::succeeded_with(Vec::new());
    finish.stdout = b"all of it\n".to_vec();
    let report = RunReport {
        run_id: first.id.clone(),
        finish,
        retry: None,
        started_at: None,
    };
    let next = NextClaim {
        per_script_limit: 10,
        runs: 1,
        workers: 1,
        skip_users: Vec::new(),
    };
    let reported = store
        .report_and_claim("w0", vec![report], Vec::new(), Some(next))
        .await
        .unwrap();
    assert_eq!(reported.recorded, [true]);
    assert_eq!(reported.next[0].id, second.id);
    assert!(
        !store
            .write_partial_output(&first.id, "w0", &so_far)
            .await
            .unwrap()
    );
    assert_eq!(logs(first.id.clone()).await.stdout, b"all of it\n");
    assert!(
        store
            .write_partial_output(&second.id, "w0", &so_far)
            .await
            .unwrap()
    );
    let running = store.get_run(&user.id, &second.id).await.unwrap().unwrap();
    assert_eq!(running.status, "running");
    assert_eq!(logs(second.id.clone()).await.stdout, b"so far\n");
}
on_both_stores!(output_so_far_is_written_only_by_the_runs_worker_while_it_runs);

#[tokio::test]
async fn roost_logs_follow_prints_output_as_it_comes_then_the_status() {
    let (app, token, script) = app_with_printer(Backend::Sqlite).await;
    let run = start(
        &app,
        &token,
        &script,
        json!({ "lines": 2, "pause_ms": 500 }),
    )
    .await;
    let data = app.dir.path().to_path_buf();
    let env = [("ROOST_SERVER", app.base.clone()), ("ROOST_TOKEN", token)];
    let follow = |run: String| {
        let (data, env) = (data.clone(), env.clone());
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            support::process::roost(&data, &["logs", &run, "--follow"], &env)
        })
    };
    let followed = follow(run.clone()).await.unwrap();
    assert!(followed.status.success(), "{}", text(&followed.stderr));
    assert_eq!(
        text(&followed.stdout),
        format!("line 1\nline 2\ndone\nrun {run}: succeeded\n")
    );
    assert!(
        text(&followed.stderr).contains("note 1\nnote 2\n"),
        "{}",
        text(&followed.stderr)
    );

    let unknown = follow("run_nope".into()).await.unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        text(&unknown.stderr),
        "roost: 404 Not Found: run not found (not_found)\n"
    );
}
