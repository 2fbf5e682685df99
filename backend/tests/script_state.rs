//! Scripts that remember (`roost_sdk::state`): what a run writes stands
//! only if it succeeds, in the commit that records the success, with its
//! outbox messages; `compare_and_set` overtaken by another writer fails
//! the commit; quotas and isolation hold; state survives rollback and goes
//! with the script. Driven by the `state-probe` example guest, which works
//! on its state as its payload says.

mod support;

use std::time::Duration;

use reqwest::Method;
use roost::store::{
    NewRun, RetryPlan, RunStatus, StateChange, StateQuota, StateWrites, TriggerKind, now_millis,
};
use serde_json::{Value, json};
use support::process::{Server, roost, text};
use support::sdk_app::finished;
use support::{Backend, TestApp, open_store, succeeded_with};

/// A server whose failed runs are retried quickly.
async fn app(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.runner.retry_base = Duration::from_millis(50);
    })
    .await
}

/// Deploys the probe as `name`, retried once on failure.
async fn deploy_probe(app: &TestApp, token: &str, name: &str) -> String {
    let component = roost_tests::example("state-probe");
    let (status, deployed) = app
        .deploy_with(
            token,
            json!({ "name": name, "component": support::b64(&component), "retries": { "max": 1 } }),
        )
        .await;
    assert_eq!(status, 201, "{deployed}");
    deployed["script_id"].as_str().unwrap().to_string()
}

/// Starts a run of the probe with `steps`; its id.
async fn start(app: &TestApp, token: &str, script: &str, steps: Value) -> String {
    let (status, started) = app
        .send(
            Method::POST,
            token,
            &format!("/v1/scripts/{script}/run"),
            json!({ "payload": { "steps": steps } }),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    started["run_id"].as_str().unwrap().to_string()
}

/// Runs the probe with `steps` and waits for the run (not its retries).
async fn probe(app: &TestApp, token: &str, script: &str, steps: Value) -> Value {
    let run = start(app, token, script, steps).await;
    ended(app, token, &run).await
}

/// Run `run` once ended, with its `stdout` and `stderr`.
async fn ended(app: &TestApp, token: &str, run: &str) -> Value {
    let mut shown = finished(app, token, run).await;
    let (status, logs) = app.get_text(token, &format!("/v1/runs/{run}/logs")).await;
    assert_eq!(status, 200, "{logs}");
    let (out, err) = logs
        .trim_start_matches("--- stdout ---\n")
        .split_once("--- stderr ---\n")
        .unwrap();
    shown["stdout"] = json!(out);
    shown["stderr"] = json!(err);
    shown
}

/// The script's state as the API lists it: key → value.
async fn state_of(app: &TestApp, token: &str, script: &str) -> Vec<(String, Value)> {
    let (status, page) = app.get(token, &format!("/v1/scripts/{script}/state")).await;
    assert_eq!(status, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap().to_string(), e["value"].clone()))
        .collect()
}

fn stdout(run: &Value) -> String {
    run["stdout"].as_str().unwrap_or_default().to_string()
}

/// How many messages runs sent. The alert about a failed run goes to the
/// outbox too, at the alerts' next tick, whenever that falls in the test;
/// it is left out.
async fn outbox_len(app: &TestApp, token: &str) -> usize {
    let (_, page) = app.get(token, "/v1/messages").await;
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["channel"] != "alerts")
        .count()
}

async fn writes_stand_only_with_a_success(backend: Backend) {
    let app = app(backend).await;
    let ada = app.user("ada").await;
    let script = deploy_probe(&app, &ada, "probe").await;

    let run = probe(
        &app,
        &ada,
        &script,
        json!([
            { "get": "cursor" },
            { "set": ["cursor", { "after": 1 }] },
            { "get": "cursor" },
            { "set": ["seen/a", true] },
            { "getMany": ["seen/a", "cursor", "none"] },
            { "list": "seen/" },
            { "message": "first" }
        ]),
    )
    .await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    let out = stdout(&run);
    assert!(out.contains(r#"{"get":"cursor","value":null}"#), "{out}");
    assert!(
        out.contains(r#"{"get":"cursor","value":{"after":1}}"#),
        "a run reads its own writes: {out}"
    );
    assert!(out.contains(r#""values":[true,{"after":1},null]"#), "{out}");
    assert!(out.contains(r#""entries":[["seen/a",true]]"#), "{out}");
    assert_eq!(
        state_of(&app, &ada, &script).await,
        [
            ("cursor".to_string(), json!({ "after": 1 })),
            ("seen/a".to_string(), json!(true))
        ]
    );
    let (_, entry) = app
        .get(&ada, &format!("/v1/scripts/{script}/state/cursor"))
        .await;
    assert_eq!(entry["entry"]["runId"], run["run"]["id"], "{entry}");

    // A failure after writes and a message keeps neither, and its retry
    // (which fails the same way) starts from the same state.
    let run = probe(
        &app,
        &ada,
        &script,
        json!([
            { "get": "cursor" },
            { "set": ["cursor", { "after": 2 }] },
            { "delete": "seen/a" },
            { "message": "second" },
            { "fail": "halfway" }
        ]),
    )
    .await;
    assert_eq!(run["run"]["status"], "failed", "{run}");
    let retry = wait_for_attempt(&app, &ada, &script, 2).await;
    assert_eq!(retry["run"]["status"], "failed", "{retry}");
    assert!(
        stdout(&retry).contains(r#"{"get":"cursor","value":{"after":1}}"#),
        "the retry sees the cursor the failed run found: {}",
        stdout(&retry)
    );
    assert_eq!(
        state_of(&app, &ada, &script).await,
        [
            ("cursor".to_string(), json!({ "after": 1 })),
            ("seen/a".to_string(), json!(true))
        ]
    );
    assert_eq!(
        outbox_len(&app, &ada).await,
        1,
        "only the success's message"
    );

    // A run stopped at its time limit keeps nothing either.
    let component = roost_tests::example("state-probe");
    let (status, deployed) = app
        .deploy_with(
            &ada,
            json!({ "name": "probe", "component": support::b64(&component),
                    "retries": { "max": 0 }, "limits": { "timeout_ms": 1000 } }),
        )
        .await;
    assert_eq!(status, 201, "{deployed}");
    let run = probe(
        &app,
        &ada,
        &script,
        json!([{ "set": ["cursor", 3] }, { "message": "late" }, { "sleepMs": 5000 }]),
    )
    .await;
    assert_eq!(run["run"]["status"], "timed_out", "{run}");
    assert_eq!(
        state_of(&app, &ada, &script).await[0].1,
        json!({ "after": 1 })
    );
    assert_eq!(outbox_len(&app, &ada).await, 1);
}
on_both_stores!(writes_stand_only_with_a_success);

/// The newest run of `script` at `attempt`, once finished.
async fn wait_for_attempt(app: &TestApp, token: &str, script: &str, attempt: i64) -> Value {
    for _ in 0..400 {
        let (_, page) = app
            .get(token, &format!("/v1/runs?script_id={script}&limit=50"))
            .await;
        let found = page["runs"].as_array().unwrap().iter().find(|r| {
            r["attempt"] == attempt && r["status"] != "queued" && r["status"] != "running"
        });
        if let Some(run) = found {
            return ended(app, token, run["id"].as_str().unwrap()).await;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no finished attempt {attempt} of {script}");
}

/// Two nodes: run A takes a lock with compare_and_set and works on; run B
/// (on the other node) sets the lock meanwhile and succeeds first. A's
/// success is refused at its commit, with its message; its retry finds
/// the lock taken.
async fn compare_and_set_overtaken_fails_the_commit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.runner.workers = 1;
        config.runner.retry_base = Duration::from_millis(50);
    })
    .await;
    app.another_node().await;
    let ada = app.user("ada").await;
    let script = deploy_probe(&app, &ada, "locker").await;

    let a = start(
        &app,
        &ada,
        &script,
        json!([
            { "cas": ["lock", null, "A"] },
            { "message": "A holds the lock" },
            { "sleepMs": 3000 }
        ]),
    )
    .await;
    wait_until_running(&app, &ada, &a).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = probe(&app, &ada, &script, json!([{ "set": ["lock", "B"] }])).await;
    assert_eq!(b["run"]["status"], "succeeded", "{b}");

    let a_run = ended(&app, &ada, &a).await;
    assert_eq!(a_run["run"]["status"], "failed", "{a_run}");
    let error = a_run["run"]["error"].as_str().unwrap();
    assert!(
        error.contains("state key `lock` changed after this run's compare_and_set read it"),
        "{error}"
    );
    assert!(error.contains("Nothing it wrote was kept"), "{error}");
    let retry = wait_for_attempt(&app, &ada, &script, 2).await;
    assert_eq!(retry["run"]["status"], "succeeded", "{retry}");
    assert!(
        stdout(&retry).contains(r#"{"cas":"lock","swapped":false}"#),
        "{}",
        stdout(&retry)
    );
    assert_eq!(
        state_of(&app, &ada, &script).await,
        [("lock".to_string(), json!("B"))]
    );
    // Only the retry's message: the refused success kept none.
    let (_, page) = app.get(&ada, "/v1/messages").await;
    let runs: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(runs, [retry["run"]["id"].as_str().unwrap()]);
}
on_both_stores!(compare_and_set_overtaken_fails_the_commit);

async fn wait_until_running(app: &TestApp, token: &str, run: &str) {
    for _ in 0..400 {
        let (_, shown) = app.get(token, &format!("/v1/runs/{run}")).await;
        if shown["run"]["status"] == "running" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run} never ran");
}

async fn quotas_and_limits_are_refused_with_nothing_stored(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.abuse.max_state_keys_per_script = 3;
        config.abuse.max_state_bytes_per_script = 2_000;
    })
    .await;
    let ada = app.user("ada").await;
    let component = roost_tests::example("state-probe");
    let (_, deployed) = app.deploy(&ada, "probe", &component).await;
    let script = deployed["script_id"].as_str().unwrap().to_string();

    let refused = |steps: Value| {
        let (app, ada, script) = (&app, &ada, &script);
        async move {
            let run = probe(app, ada, script, steps).await;
            assert_eq!(run["run"]["status"], "failed", "{run}");
            run["stderr"].as_str().unwrap().to_string()
        }
    };
    let keys: Vec<Value> = (1..=4)
        .map(|i| json!({ "set": [format!("k{i}"), i] }))
        .collect();
    let stderr = refused(Value::Array(keys)).await;
    assert!(
        stderr.contains(
            "state: quota exceeded: this run's writes would hold 4 keys; the most allowed is 3"
        ),
        "{stderr}"
    );
    let stderr = refused(json!([{ "set": ["big", "x".repeat(2_100)] }])).await;
    assert!(
        stderr.contains(
            "this run's writes would take 2105 bytes of keys and values; the most allowed is 2000"
        ),
        "{stderr}"
    );
    let stderr = refused(json!([{ "set": ["huge", "x".repeat(70_000)] }])).await;
    assert!(
        stderr.contains("state: value too large") && stderr.contains("at most 65536"),
        "{stderr}"
    );
    let stderr = refused(json!([{ "set": ["k".repeat(257), 1] }])).await;
    assert!(
        stderr.contains("state: invalid key: a key takes 1 to 256 bytes"),
        "{stderr}"
    );
    assert!(state_of(&app, &ada, &script).await.is_empty());

    // The API holds writes to the same rules.
    let put = |key: String, body: Value| {
        let (app, ada, script) = (&app, &ada, &script);
        async move {
            app.send(
                Method::PUT,
                ada,
                &format!("/v1/scripts/{script}/state/{key}"),
                body,
            )
            .await
        }
    };
    for i in 1..=3 {
        let (status, body) = put(format!("k{i}"), json!({ "value": i })).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = put("k4".into(), json!({ "value": 4 })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (507, Some("quota_exceeded")),
        "{body}"
    );
    let (status, body) = put("k1".into(), json!({ "value": "y".repeat(70_000) })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("value_too_large"))
    );
    let (status, body) = put("k1".into(), json!({ "value": 1, "ttlSeconds": 0 })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_input"))
    );
    let (status, body) = put("k1".into(), json!({ "valeu": 1 })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_body"))
    );
    let (status, body) = put("k".repeat(257), json!({ "value": 1 })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_key"))
    );
    assert_eq!(state_of(&app, &ada, &script).await.len(), 3);

    // A run whose writes fit alone but not with what is stored fails when
    // its success is recorded, and keeps nothing (its message neither).
    let run = probe(
        &app,
        &ada,
        &script,
        json!([{ "set": ["k9", 9] }, { "message": "k9 stored" }]),
    )
    .await;
    assert_eq!(run["run"]["status"], "failed", "{run}");
    let error = run["run"]["error"].as_str().unwrap();
    assert!(
        error.contains("the script's state would hold 4 keys; the most allowed is 3"),
        "{error}"
    );
    assert_eq!(state_of(&app, &ada, &script).await.len(), 3);
    assert_eq!(outbox_len(&app, &ada).await, 0);
    // A restore past the quota replaces nothing.
    let four: Vec<Value> = (1..=4)
        .map(|i| json!({ "key": format!("r{i}"), "value": i }))
        .collect();
    let (status, body) = app
        .send(
            Method::PUT,
            &ada,
            &format!("/v1/scripts/{script}/state"),
            json!({ "entries": four }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (507, Some("quota_exceeded")),
        "{body}"
    );
    assert_eq!(state_of(&app, &ada, &script).await[0].0, "k1");

    // Listed in pages, by prefix.
    let (_, first) = app
        .get(
            &ada,
            &format!("/v1/scripts/{script}/state?prefix=k&limit=2"),
        )
        .await;
    assert_eq!(first["entries"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["next_cursor"], "k2");
    assert_eq!(first["usage"]["keys"], 3);
    assert_eq!(first["quota"]["maxKeys"], 3);
    let (_, rest) = app
        .get(
            &ada,
            &format!("/v1/scripts/{script}/state?prefix=k&limit=2&cursor=k2"),
        )
        .await;
    assert_eq!(rest["entries"][0]["key"], "k3", "{rest}");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, none) = app
        .get(&ada, &format!("/v1/scripts/{script}/state?prefix=x"))
        .await;
    assert_eq!(none["entries"], json!([]));
}
on_both_stores!(quotas_and_limits_are_refused_with_nothing_stored);

async fn state_is_the_scripts_own_and_its_users(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ada, bob) = (app.user("ada").await, app.user("bob").await);
    let component = roost_tests::example("state-probe");
    let (_, x) = app.deploy(&ada, "x", &component).await;
    let (_, y) = app.deploy(&ada, "y", &component).await;
    let (x, y) = (
        x["script_id"].as_str().unwrap(),
        y["script_id"].as_str().unwrap(),
    );

    let run = probe(&app, &ada, x, json!([{ "set": ["secret", "x's"] }])).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    let run = probe(&app, &ada, y, json!([{ "get": "secret" }, { "list": "" }])).await;
    assert!(
        stdout(&run).contains(r#"{"get":"secret","value":null}"#)
            && stdout(&run).contains(r#""entries":[]"#),
        "another script's state is not this one's: {}",
        stdout(&run)
    );
    for (method, path) in [
        (Method::GET, format!("/v1/scripts/{x}/state")),
        (Method::GET, format!("/v1/scripts/{x}/state/secret")),
        (Method::PUT, format!("/v1/scripts/{x}/state/secret")),
        (Method::DELETE, format!("/v1/scripts/{x}/state/secret")),
        (Method::DELETE, format!("/v1/scripts/{x}/state")),
    ] {
        let (status, body) = app
            .send(method.clone(), &bob, &path, json!({ "value": "bob's" }))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{method} {path}"
        );
    }
    let (status, _) = app
        .send(
            Method::GET,
            "not-a-token",
            &format!("/v1/scripts/{x}/state"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 401);
    let (status, body) = app
        .get(&ada, &format!("/v1/scripts/{x}/state/missing"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    assert_eq!(
        state_of(&app, &ada, x).await,
        [("secret".to_string(), json!("x's"))]
    );
}
on_both_stores!(state_is_the_scripts_own_and_its_users);

async fn state_survives_rollback_and_goes_with_the_script(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.user("ada").await;
    let script = deploy_probe(&app, &ada, "probe").await;
    let run = probe(&app, &ada, &script, json!([{ "set": ["cursor", 7] }])).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    deploy_probe(&app, &ada, "probe").await;
    let (status, body) = app
        .send(
            Method::POST,
            &ada,
            &format!("/v1/scripts/{script}/rollback"),
            json!({ "version": 1 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        state_of(&app, &ada, &script).await,
        [("cursor".to_string(), json!(7))]
    );
    let (status, body) = app
        .send(
            Method::DELETE,
            &ada,
            &format!("/v1/scripts/{script}/state/cursor"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = app
        .send(
            Method::DELETE,
            &ada,
            &format!("/v1/scripts/{script}/state/cursor"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 404);
    app.send(
        Method::PUT,
        &ada,
        &format!("/v1/scripts/{script}/state/a/b"),
        json!({ "value": 1 }),
    )
    .await;
    assert_eq!(state_of(&app, &ada, &script).await[0].0, "a/b");

    // A restore replaces the whole state; a listing goes back in as it is.
    let replace = |body: Value| {
        let (app, ada, script) = (&app, &ada, &script);
        async move {
            app.send(
                Method::PUT,
                ada,
                &format!("/v1/scripts/{script}/state"),
                body,
            )
            .await
        }
    };
    let (status, body) = replace(json!({ "entries": [
        { "key": "cursor", "value": { "after": 9 } },
        { "key": "seen/x", "value": true, "ttlSeconds": 3600 }
    ] }))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["keys"], 2);
    let (_, exported) = app.get(&ada, &format!("/v1/scripts/{script}/state")).await;
    let listed = state_of(&app, &ada, &script).await;
    assert_eq!(listed[0], ("cursor".to_string(), json!({ "after": 9 })));
    assert_eq!(listed.len(), 2, "a/b is gone");
    let (status, body) = replace(json!({ "entries": exported["entries"] })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(state_of(&app, &ada, &script).await, listed);
    for (entries, code) in [
        (
            json!([{ "key": "k", "value": 1 }, { "key": "k", "value": 2 }]),
            "invalid_key",
        ),
        (
            json!([{ "key": "k", "value": 1, "expiresAt": 1 }]),
            "invalid_input",
        ),
        (
            json!([{ "key": "k", "value": 1, "expiresAt": 1, "ttlSeconds": 5 }]),
            "invalid_input",
        ),
    ] {
        let (status, body) = replace(json!({ "entries": entries })).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }
    assert_eq!(
        state_of(&app, &ada, &script).await,
        listed,
        "nothing replaced"
    );

    let (status, _) = app
        .send(
            Method::DELETE,
            &ada,
            &format!("/v1/scripts/{script}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&ada, &format!("/v1/scripts/{script}/state")).await;
    assert_eq!(status, 404);
    assert!(
        app.store
            .state_entries(&script, "", None, 10)
            .await
            .unwrap()
            .is_empty(),
        "the deleted script's state is gone from the store"
    );
    assert_eq!(app.store.state_usage(&script).await.unwrap().keys, 0);
}
on_both_stores!(state_survives_rollback_and_goes_with_the_script);

/// The store's side, without a guest: conditions and quotas checked in the
/// commit of the run's end; a refused success is recorded as a failure,
/// without its messages, and its retry is queued.
async fn the_commit_checks_conditions_and_quotas(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let ada = store.create_user("ada", "h").await.unwrap();
    let script = support::bare_script(store.as_ref(), &ada.id).await;
    let claimed = || async {
        store
            .enqueue_run(&NewRun {
                user_id: ada.id.clone(),
                script_id: script.clone(),
                script_version: 1,
                handler: None,
                trigger_kind: TriggerKind::Manual,
                trigger_spec: String::new(),
                payload: Value::Null,
                not_before: None,
            })
            .await
            .unwrap();
        store.claim_run("w1", 10, &[]).await.unwrap().unwrap()
    };
    let set = |key: &str, value: &str| StateChange {
        key: key.into(),
        value: Some(value.into()),
        expires_at: None,
    };
    let quota = StateQuota {
        max_keys: 2,
        max_bytes: 1_000,
    };
    let finish_with = |run: &roost::store::RunRow, writes: StateWrites| {
        let mut finish = succeeded_with(vec![roost::store::MessageRow {
            id: roost::store::new_id("msg"),
            user_id: ada.id.clone(),
            script_id: script.clone(),
            run_id: run.id.clone(),
            channel: None,
            recipient: None,
            subject: None,
            body: "sent".into(),
            created_at: now_millis(),
        }]);
        finish.effects.script_id = script.clone();
        finish.effects.state = writes;
        finish
    };
    let retry = |run: &roost::store::RunRow| RetryPlan {
        attempt: 2,
        first_run_id: run.id.clone(),
        not_before: 0,
    };
    let recorded = |run: roost::store::RunRow| {
        let (store, ada) = (&store, &ada);
        async move { store.get_run(&ada.id, &run.id).await.unwrap().unwrap() }
    };

    let r1 = claimed().await;
    let writes = StateWrites {
        changes: vec![set("a", "1"), set("b", "2")],
        expected: vec![("a".into(), None)],
        quota,
    };
    assert!(
        store
            .finish_run(&r1.id, "w1", &finish_with(&r1, writes), Some(&retry(&r1)))
            .await
            .unwrap()
    );
    assert_eq!(recorded(r1.clone()).await.status, RunStatus::Succeeded);
    let a = store.state_entry(&script, "a").await.unwrap().unwrap();
    assert_eq!(
        (a.value.as_str(), a.run_id.as_deref()),
        ("1", Some(r1.id.as_str()))
    );
    assert!(
        store.claim_run("w1", 10, &[]).await.unwrap().is_none(),
        "a success queues no retry"
    );

    // Another writer moves `a` after r2's compare-and-set saw "1".
    let r2 = claimed().await;
    let api = StateWrites {
        changes: vec![set("a", "5")],
        ..Default::default()
    };
    store.write_state(&script, &api).await.unwrap();
    let writes = StateWrites {
        changes: vec![set("a", "2")],
        expected: vec![("a".into(), Some("1".into()))],
        quota,
    };
    assert!(
        store
            .finish_run(&r2.id, "w1", &finish_with(&r2, writes), Some(&retry(&r2)))
            .await
            .unwrap()
    );
    let r2_row = recorded(r2.clone()).await;
    assert_eq!(r2_row.status, RunStatus::Failed);
    assert!(r2_row.error.unwrap().contains("state key `a` changed"));
    assert_eq!(
        store
            .state_entry(&script, "a")
            .await
            .unwrap()
            .unwrap()
            .value,
        "5"
    );
    let retried = store
        .claim_run("w1", 10, &[])
        .await
        .unwrap()
        .expect("its retry");
    assert_eq!(retried.attempt, 2);
    assert!(
        store
            .finish_run(&retried.id, "w1", &succeeded_with(Vec::new()), None)
            .await
            .unwrap()
    );

    // A commit that would pass the quota (two keys stored, a third new).
    let r3 = claimed().await;
    let writes = StateWrites {
        changes: vec![set("c", "3")],
        quota,
        ..Default::default()
    };
    assert!(
        store
            .finish_run(&r3.id, "w1", &finish_with(&r3, writes), None)
            .await
            .unwrap()
    );
    let r3_row = recorded(r3).await;
    assert_eq!(r3_row.status, RunStatus::Failed);
    assert!(
        r3_row
            .error
            .unwrap()
            .contains("would hold 3 keys; the most allowed is 2")
    );
    assert!(store.state_entry(&script, "c").await.unwrap().is_none());
    let outbox = store
        .list_messages(
            &ada.id,
            &roost::store::MessageFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(outbox.len(), 1, "only the first success's message");

    // An entry past its expiry reads as absent and no longer counts.
    let expiring = StateWrites {
        changes: vec![StateChange {
            key: "b".into(),
            value: Some("2".into()),
            expires_at: Some(now_millis() + 100),
        }],
        ..Default::default()
    };
    store.write_state(&script, &expiring).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store.state_entry(&script, "b").await.unwrap().is_none());
    assert_eq!(store.state_usage(&script).await.unwrap().keys, 1);
    let r4 = claimed().await;
    let writes = StateWrites {
        changes: vec![set("c", "3")],
        expected: vec![("b".into(), None)],
        quota,
    };
    assert!(
        store
            .finish_run(&r4.id, "w1", &finish_with(&r4, writes), None)
            .await
            .unwrap()
    );
    assert_eq!(recorded(r4).await.status, RunStatus::Succeeded);
    let keys: Vec<String> = store
        .state_entries(&script, "", None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["a", "c"]);
}
on_both_stores!(the_commit_checks_conditions_and_quotas);

async fn call(method: Method, url: &str, token: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// A server killed (SIGKILL) while a run that moved the cursor and left a
/// message is still going: the state is as the run found it; after the
/// restart the run is executed again from that state, and its writes and
/// message are committed once.
async fn a_run_killed_mid_way_leaves_the_state_unchanged(backend: Backend) {
    let data = tempfile::tempdir().unwrap();
    let database = support::database_url(backend, data.path()).await;
    let env = [("ROOST_DATABASE_URL", database.as_str())];
    let flags = ["--workers", "1", "--run-stale-secs", "1"];
    let server = Server::start_with(data.path(), &flags, &env);
    let created = roost(data.path(), &["user", "create", "ada"], &env);
    let token = text(&created.stdout).trim().to_string();
    assert!(!token.is_empty(), "{}", text(&created.stderr));
    let component = roost_tests::example("state-probe");
    let deployed = call(
        Method::POST,
        &format!("{}/v1/scripts/deploy", server.url),
        &token,
        json!({ "name": "probe", "component": support::b64(&component) }),
    )
    .await;
    let script = deployed["script_id"].as_str().unwrap().to_string();
    let run = |base: &str, steps: Value| {
        let (url, token) = (format!("{base}/v1/scripts/{script}/run"), token.clone());
        async move {
            let started = call(
                Method::POST,
                &url,
                &token,
                json!({ "payload": { "steps": steps } }),
            )
            .await;
            started["run_id"].as_str().unwrap().to_string()
        }
    };
    let status_of = |base: &str, run: &str| {
        let (url, token) = (format!("{base}/v1/runs/{run}"), token.clone());
        async move {
            let shown = call(Method::GET, &url, &token, Value::Null).await;
            shown["run"]["status"].as_str().unwrap().to_string()
        }
    };
    let wait_for = |base: String, run: String, wanted: &'static str| {
        let status_of = &status_of;
        async move {
            let mut status = String::new();
            for _ in 0..400 {
                status = status_of(&base, &run).await;
                if status == wanted {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("run {run} is {status}, not {wanted}");
        }
    };

    let first = run(&server.url, json!([{ "set": ["cursor", 1] }])).await;
    wait_for(server.url.clone(), first, "succeeded").await;
    let second = run(
        &server.url,
        json!([
            { "get": "cursor" },
            { "set": ["cursor", 2] },
            { "message": "moved to 2" },
            { "sleepMs": 4000 }
        ]),
    )
    .await;
    wait_for(server.url.clone(), second.clone(), "running").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill_hard();

    // Dead server, same database: nothing of the second run is there.
    let store = roost::store::connect(&database).await.unwrap();
    let cursor = store.state_entry(&script, "cursor").await.unwrap().unwrap();
    assert_eq!(cursor.value, "1", "the killed run moved nothing");
    drop(store);

    let server = Server::start_with(data.path(), &flags, &env);
    wait_for(server.url.clone(), second.clone(), "succeeded").await;
    let logs = reqwest::Client::new()
        .get(format!("{}/v1/runs/{second}/logs", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        logs.contains(r#"{"get":"cursor","value":1}"#),
        "executed again from the cursor it first found: {logs}"
    );
    let entry = call(
        Method::GET,
        &format!("{}/v1/scripts/{script}/state/cursor", server.url),
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(entry["entry"]["value"], 2);
    assert_eq!(entry["entry"]["runId"], second.as_str());
    let outbox = call(
        Method::GET,
        &format!("{}/v1/messages", server.url),
        &token,
        Value::Null,
    )
    .await;
    let bodies: Vec<&str> = outbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["moved to 2"], "one message, however often it ran");
    assert!(server.stop().success());
}
on_both_stores!(a_run_killed_mid_way_leaves_the_state_unchanged);
