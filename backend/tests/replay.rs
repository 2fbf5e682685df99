//! `POST /v1/runs/replay`: finished runs queued again with their payloads,
//! each new run naming its original; all or nothing, within the queue cap,
//! never another user's runs.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::dashboard::Session;
use support::{Backend, TestApp};

/// The state probe (fails on a `fail` step) as `name`, retried `retries` times.
async fn deploy_probe(app: &TestApp, token: &str, name: &str, retries: i64) -> String {
    let component = roost_tests::example("state-probe");
    let (status, deployed) = app
        .deploy_with(
            token,
            json!({ "name": name, "component": support::b64(&component),
                    "retries": { "max": retries } }),
        )
        .await;
    assert_eq!(status, 201, "{deployed}");
    deployed["script_id"].as_str().unwrap().to_string()
}

/// A payload that fails the probe, tagged so a replay's can be told apart.
fn failing(tag: &str) -> Value {
    json!({ "steps": [{ "fail": "boom" }], "tag": tag })
}

/// Starts a run of `script` with `payload` and waits for its whole chain
/// (retries included) to end; the id of its first attempt.
async fn run_to_end(app: &TestApp, token: &str, script: &str, payload: Value) -> String {
    let (status, started) = app
        .send(
            Method::POST,
            token,
            &format!("/v1/scripts/{script}/run"),
            json!({ "payload": payload }),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let id = started["run_id"].as_str().unwrap().to_string();
    settled(app, token, script).await;
    id
}

/// Waits until no run of `script` is queued or running.
async fn settled(app: &TestApp, token: &str, script: &str) {
    for _ in 0..600 {
        let runs = runs_of(app, token, script).await;
        if runs
            .iter()
            .all(|r| r["status"] != "queued" && r["status"] != "running")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the runs of {script} did not settle");
}

/// Every run of `script`, newest first.
async fn runs_of(app: &TestApp, token: &str, script: &str) -> Vec<Value> {
    let (status, page) = app
        .get(token, &format!("/v1/runs?script_id={script}&limit=200"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["runs"].as_array().unwrap().clone()
}

async fn replay(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.send(Method::POST, token, "/v1/runs/replay", body).await
}

/// The original of each queued replay, and its new run id.
fn queued(answer: &Value) -> Vec<(String, Option<String>)> {
    answer["queued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["original"].as_str().unwrap().to_string(),
                q["run_id"].as_str().map(str::to_string),
            )
        })
        .collect()
}

async fn failed_runs_go_again_with_their_payloads_linked(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.retry_base = Duration::from_millis(50);
    })
    .await;
    let ada = app.user("ada").await;
    let script = deploy_probe(&app, &ada, "probe", 1).await;
    // A failure retried once (a chain of two attempts), and a success.
    let first = run_to_end(&app, &ada, &script, failing("a")).await;
    run_to_end(&app, &ada, &script, json!({ "steps": [], "tag": "ok" })).await;
    let runs = runs_of(&app, &ada, &script).await;
    assert_eq!(runs.len(), 3, "{runs:?}");
    let last_attempt = runs
        .iter()
        .find(|r| r["first_run_id"] == first.as_str())
        .expect("the retry")["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The dry run names the chain once, by its last attempt, and queues nothing.
    let (status, dry) = replay(&app, &ada, json!({ "script_id": script, "dry_run": true })).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["matched"], 1, "{dry}");
    assert_eq!(queued(&dry), vec![(last_attempt.clone(), None)]);
    assert_eq!(runs_of(&app, &ada, &script).await.len(), 3);

    let (status, done) = replay(&app, &ada, json!({ "script_id": script })).await;
    assert_eq!(status, 202, "{done}");
    assert_eq!(done["dry_run"], false);
    let replays = queued(&done);
    assert_eq!(replays.len(), 1, "{done}");
    assert_eq!(replays[0].0, last_attempt);
    let new_run = replays[0].1.clone().expect("a new run id");
    let (_, shown) = app.get(&ada, &format!("/v1/runs/{new_run}")).await;
    let shown = &shown["run"];
    assert_eq!(shown["replay_of"], last_attempt.as_str(), "{shown}");
    assert_eq!(shown["payload"], failing("a"));
    assert_eq!(shown["attempt"], 1);
    assert_eq!(shown["trigger_kind"], "manual");
    // The workers take it at once, and it fails as its original did.
    settled(&app, &ada, &script).await;
    let (_, ended) = app.get(&ada, &format!("/v1/runs/{new_run}")).await;
    assert_eq!(ended["run"]["status"], "failed", "{ended}");

    // Asked again: the original was replayed already; its replay's chain
    // (failed too) is what goes now.
    let (status, again) = replay(&app, &ada, json!({ "script_id": script })).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["matched"], 2, "{again}");
    assert_eq!(
        again["skipped"],
        json!([{ "run_id": last_attempt, "reason": "already_replayed" }])
    );
    let second = queued(&again);
    assert_eq!(second.len(), 1, "{again}");
    let (_, original) = app.get(&ada, &format!("/v1/runs/{}", second[0].0)).await;
    assert_eq!(original["run"]["payload"], failing("a"));
    assert_ne!(second[0].0, last_attempt);

    // Succeeded runs only when named.
    let (status, ok) = replay(
        &app,
        &ada,
        json!({ "script_id": script, "status": "succeeded", "dry_run": true }),
    )
    .await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["matched"], 1, "{ok}");

    // The dashboard's run page links the replay to its original.
    let session = Session::sign_in(&app, &ada).await;
    let page = session.get(&format!("/runs/{new_run}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&format!(
            r#"<a href="/runs/{last_attempt}">{last_attempt}</a>"#
        )),
        "{}",
        page.body
    );
}
on_both_stores!(failed_runs_go_again_with_their_payloads_linked);

async fn filters_pick_by_script_and_time_and_never_another_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ada, bob) = (app.user("ada").await, app.user("bob").await);
    let one = deploy_probe(&app, &ada, "one", 0).await;
    let two = deploy_probe(&app, &ada, "two", 0).await;
    let bobs = deploy_probe(&app, &bob, "one", 0).await;
    let early = run_to_end(&app, &ada, &one, failing("early")).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, shown) = app.get(&ada, &format!("/v1/runs/{early}")).await;
    let cut = shown["run"]["queued_at"].as_i64().unwrap() + 1;
    let late = run_to_end(&app, &ada, &one, failing("late")).await;
    let other = run_to_end(&app, &ada, &two, failing("other")).await;
    let bob_run = run_to_end(&app, &bob, &bobs, failing("bob")).await;

    let originals = |answer: &Value| {
        let mut ids: Vec<String> = queued(answer).into_iter().map(|(o, _)| o).collect();
        ids.sort();
        ids
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    // By script.
    let (status, by_script) = replay(
        &app,
        &ada,
        json!({ "script_id": one, "status": ["failed"], "dry_run": true }),
    )
    .await;
    assert_eq!(status, 200, "{by_script}");
    assert_eq!(
        originals(&by_script),
        sorted(vec![early.clone(), late.clone()])
    );
    // By time: since (Unix ms) and until (RFC 3339).
    let (_, since) = replay(&app, &ada, json!({ "since": cut, "dry_run": true })).await;
    assert_eq!(
        originals(&since),
        sorted(vec![late.clone(), other.clone()]),
        "{since}"
    );
    let (_, until) = replay(
        &app,
        &ada,
        json!({ "since": 0, "until": "2000-01-01T00:00:00Z", "dry_run": true }),
    )
    .await;
    assert_eq!(until["matched"], 0, "{until}");
    // A status that did not happen matches nothing.
    let (_, timed_out) = replay(
        &app,
        &ada,
        json!({ "since": 0, "status": "timed_out", "dry_run": true }),
    )
    .await;
    assert_eq!(timed_out["matched"], 0, "{timed_out}");

    // Everything of ada's, for real: never bob's, even by his script's id.
    let (status, all) = replay(&app, &ada, json!({ "since": 0 })).await;
    assert_eq!(status, 202, "{all}");
    assert_eq!(originals(&all), sorted(vec![early, late, other]));
    let (_, bobs_by_id) = replay(&app, &ada, json!({ "script_id": bobs })).await;
    assert_eq!(bobs_by_id["matched"], 0, "{bobs_by_id}");
    let bob_runs = runs_of(&app, &bob, &bobs).await;
    assert_eq!(bob_runs.len(), 1);
    assert_eq!(bob_runs[0]["id"], bob_run.as_str());
}
on_both_stores!(filters_pick_by_script_and_time_and_never_another_user);

async fn bad_requests_are_refused_with_codes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let script = deploy_probe(&app, &ada, "probe", 0).await;
    for tag in ["a", "b", "c"] {
        run_to_end(&app, &ada, &script, failing(tag)).await;
    }
    let cases = [
        (
            json!({ "script_id": script, "dryRun": true }),
            422,
            "invalid_body",
        ),
        (
            json!({ "script_id": script, "limit": "ten" }),
            422,
            "invalid_body",
        ),
        (json!({ "status": ["failed"] }), 400, "filter_required"),
        (json!({}), 400, "filter_required"),
        (
            json!({ "script_id": script, "status": "queued" }),
            400,
            "invalid_status",
        ),
        (
            json!({ "script_id": script, "status": ["failed", "nope"] }),
            400,
            "invalid_status",
        ),
        (
            json!({ "script_id": script, "limit": 1001 }),
            400,
            "invalid_limit",
        ),
        (
            json!({ "script_id": script, "limit": 0 }),
            400,
            "invalid_limit",
        ),
        (json!({ "since": "yesterday" }), 400, "invalid_time"),
        (
            json!({ "since": 2000, "until": 1000 }),
            400,
            "invalid_range",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let (status, answer) = replay(&app, &ada, body.clone()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{body} -> {answer}"
        );
    }
    let malformed = app
        .client
        .post(format!("{}/v1/runs/replay", app.base))
        .bearer_auth(&ada)
        .body("{\"script_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    let malformed: Value = malformed.json().await.unwrap();
    assert_eq!(malformed["error"]["code"], "malformed_json");

    // Past the limit: refused, saying how many matched, nothing queued.
    let (status, over) = replay(&app, &ada, json!({ "script_id": script, "limit": 2 })).await;
    assert_eq!(status, 400, "{over}");
    assert_eq!(over["error"]["code"], "too_many_runs");
    assert_eq!(over["error"]["details"]["matched"], 3, "{over}");
    assert!(
        over["error"]["message"]
            .as_str()
            .unwrap()
            .contains("matches 3 runs"),
        "{over}"
    );
    assert_eq!(runs_of(&app, &ada, &script).await.len(), 3);

    // A deleted script's runs are skipped, and said so.
    let (status, _) = app
        .send(
            Method::DELETE,
            &ada,
            &format!("/v1/scripts/{script}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let (status, gone) = replay(&app, &ada, json!({ "script_id": script })).await;
    assert_eq!(status, 202, "{gone}");
    assert_eq!(gone["matched"], 3);
    assert_eq!(gone["queued"], json!([]));
    let reasons: Vec<&str> = gone["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["script_deleted"; 3]);
}
on_both_stores!(bad_requests_are_refused_with_codes);

async fn a_replay_past_the_queue_cap_queues_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.abuse.max_queued_runs_per_user = 2;
    })
    .await;
    let ada = app.user("ada").await;
    let script = deploy_probe(&app, &ada, "probe", 0).await;
    let mut firsts = Vec::new();
    for tag in ["a", "b", "c"] {
        firsts.push(run_to_end(&app, &ada, &script, failing(tag)).await);
    }
    for dry_run in [true, false] {
        let (status, refused) = replay(
            &app,
            &ada,
            json!({ "script_id": script, "dry_run": dry_run }),
        )
        .await;
        assert_eq!(status, 429, "{refused}");
        assert_eq!(refused["error"]["code"], "queue_full");
        assert_eq!(refused["error"]["details"]["incoming"], 3, "{refused}");
        assert_eq!(runs_of(&app, &ada, &script).await.len(), 3);
    }
    // Two fit.
    let (_, second) = app.get(&ada, &format!("/v1/runs/{}", firsts[1])).await;
    let since = second["run"]["queued_at"].as_i64().unwrap();
    let (status, fits) = replay(&app, &ada, json!({ "script_id": script, "since": since })).await;
    assert_eq!(status, 202, "{fits}");
    assert_eq!(queued(&fits).len(), 2, "{fits}");
    assert_eq!(runs_of(&app, &ada, &script).await.len(), 5);
}
on_both_stores!(a_replay_past_the_queue_cap_queues_nothing);

/// `roost runs replay` through the real binary: a dry run's table, the
/// replay as JSON, and a refusal as one readable line with its code.
#[tokio::test]
async fn replay_through_the_binary() {
    use support::process::{Server, roost, text};

    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[], &[]);
    let created = roost(data.path(), &["user", "create", "ada"], &[]);
    let token = text(&created.stdout).trim().to_string();
    let env = [
        ("ROOST_SERVER", server.url.as_str()),
        ("ROOST_TOKEN", token.as_str()),
    ];
    let component = roost_tests::example("state-probe");
    support::process::api(
        Method::POST,
        &format!("{}/v1/scripts/deploy", server.url),
        &token,
        json!({ "name": "probe", "component": support::b64(&component),
                "retries": { "max": 0 } }),
    )
    .await;
    let payload = failing("cli").to_string();
    let failed = roost(
        data.path(),
        &["start", "probe", "--wait", "--payload", &payload],
        &env,
    );
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed.stderr));
    let listed = support::process::api(
        Method::GET,
        &format!("{}/v1/runs?status=failed", server.url),
        &token,
        Value::Null,
    )
    .await;
    let original = listed["runs"][0]["id"].as_str().unwrap().to_string();

    let replay = ["runs", "replay", "--script", "probe", "--since", "1h"];
    let dry = roost(data.path(), &[&replay[..], &["--dry-run"]].concat(), &env);
    let stdout = text(&dry.stdout);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        stdout.starts_with(
            "1 of 1 matched runs would be replayed (dry run, nothing queued); 0 skipped\n"
        ),
        "{stdout}"
    );
    let row = stdout.lines().nth(2).unwrap();
    assert!(row.starts_with(&original), "{stdout}");
    assert!(row.contains(" failed "), "{stdout}");
    assert!(row.ends_with("-> (dry run)"), "{stdout}");

    let done = roost(data.path(), &[&replay[..], &["--json"]].concat(), &env);
    assert!(done.status.success(), "{}", text(&done.stderr));
    let answer: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(answer["dry_run"], false);
    assert_eq!(answer["queued"][0]["original"], original.as_str());
    let new_run = answer["queued"][0]["run_id"].as_str().unwrap();
    let shown = support::process::api(
        Method::GET,
        &format!("{}/v1/runs/{new_run}", server.url),
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(shown["run"]["replay_of"], original.as_str());

    // Asked again at once: the original was replayed, so it is skipped.
    let again = roost(data.path(), &replay, &env);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains(&format!("skipped {original}: already_replayed")),
        "{}",
        text(&again.stdout)
    );

    let refused = roost(data.path(), &["runs", "replay", "--status", "failed"], &env);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("roost: replay refused: filter_required (400 Bad Request): "),
        "{stderr}"
    );
    assert!(!stderr.contains('{'), "{stderr}");
}
