//! The same store tests against SQLite and PostgreSQL.

mod support;

use roost::store::{NewScriptVersion, StoreError, TriggerRow};
use serde_json::json;
use support::{Backend, open_store};

fn version_of(user_id: &str, name: &str, triggers: Vec<TriggerRow>) -> NewScriptVersion {
    NewScriptVersion {
        user_id: user_id.into(),
        name: name.into(),
        component: b"\0asm-component-bytes".to_vec(),
        content_hash: "ab".repeat(32),
        metadata: json!({ "sdk_version": null, "handlers": [], "integrations": [] }),
        triggers,
        retries: None,
        limits: None,
        caps: Default::default(),
    }
}

/// A script of `user_id` with one manual run queued.
async fn queued_run(store: &dyn roost::store::Store, user_id: &str) -> roost::store::RunRow {
    let v1 = store
        .create_script_version(&version_of(user_id, "s", vec![manual("a")]))
        .await
        .unwrap();
    store
        .enqueue_run(&manual_run(user_id, &v1.script_id, json!(null)))
        .await
        .unwrap()
}

/// A manual run of version 1 of a script.
fn manual_run(user_id: &str, script_id: &str, payload: serde_json::Value) -> roost::store::NewRun {
    roost::store::NewRun {
        user_id: user_id.into(),
        script_id: script_id.into(),
        script_version: 1,
        handler: None,
        trigger_kind: roost::store::TriggerKind::Manual,
        trigger_spec: String::new(),
        payload,
        not_before: None,
    }
}

/// A worker's trip with one finished run: `report_and_claim` for it, and at
/// most one next run given `claim_next` (the per-script limit).
async fn finish_and_claim(
    store: &dyn roost::store::Store,
    run_id: &str,
    worker_id: &str,
    finish: &roost::store::RunFinish,
    retry: Option<&roost::store::RetryPlan>,
    claim_next: Option<i64>,
) -> roost::store::StoreResult<(bool, Option<roost::store::RunRow>)> {
    let report = roost::store::RunReport {
        run_id: run_id.to_string(),
        finish: finish.clone(),
        retry: retry.cloned(),
        started_at: None,
    };
    let claim = claim_next.map(|per_script_limit| roost::store::NextClaim {
        per_script_limit,
        runs: 1,
        workers: 1,
        skip_users: Vec::new(),
    });
    let reported = store
        .report_and_claim(worker_id, vec![report], Vec::new(), claim)
        .await?;
    let recorded = reported.recorded.first().copied().unwrap_or(false);
    Ok((recorded, reported.next.into_iter().next()))
}

/// How a run ended, as a worker reports it.
fn outcome(status: &str) -> roost::store::RunFinish {
    roost::store::RunFinish {
        status: status.parse().unwrap(),
        exit_code: Some(0),
        duration_ms: 1,
        error: None,
        stdout: b"out".to_vec(),
        stderr: Vec::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        output_cap: 1024,
        effects: Default::default(),
    }
}

/// Event `e<n>` of type `order.created` for `user_id`, with `n` in its payload.
fn order_created(user_id: &str, n: usize) -> roost::store::NewEvent {
    roost::store::NewEvent {
        user_id: user_id.into(),
        event_id: format!("e{n}"),
        event_type: "order.created".into(),
        source: None,
        payload: json!({ "n": n }),
        source_run_id: None,
        chain_depth: 0,
    }
}

/// User `ada`, with a script that runs on every `order.created` event.
async fn user_listening_for_orders(store: &dyn roost::store::Store) -> roost::store::User {
    let ada = store.create_user("ada", "h").await.unwrap();
    store
        .create_script_version(&version_of(
            &ada.id,
            "listener",
            vec![on_event("a", "order.created")],
        ))
        .await
        .unwrap();
    ada
}

fn manual(handler: &str) -> TriggerRow {
    TriggerRow {
        handler: handler.into(),
        kind: roost::store::TriggerKind::Manual,
        spec: String::new(),
        timezone: None,
        flow: None,
    }
}

async fn users_are_unique_and_found_by_token_hash(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let ada = store.create_user("ada", "hash-1").await.unwrap();
    assert!(matches!(
        store.create_user("ada", "hash-2").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.user_by_token_hash("hash-1").await.unwrap(), Some(ada));
    assert_eq!(
        store.user_by_token_hash("hash-2").await.unwrap(),
        None,
        "the failed create left no token"
    );
}
on_both_stores!(users_are_unique_and_found_by_token_hash);

async fn versions_number_up_and_triggers_follow_the_current_one(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let user = store.create_user("ada", "h").await.unwrap();
    let v1 = store
        .create_script_version(&version_of(&user.id, "s", vec![manual("a")]))
        .await
        .unwrap();
    let v2 = store
        .create_script_version(&version_of(&user.id, "s", vec![manual("b")]))
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v1.script_id, v2.script_id);
    assert_eq!(store.triggers(&v1.script_id).await.unwrap(), [manual("b")]);
    let script = store
        .get_script(&user.id, &v1.script_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(script.current_version, 2);
}
on_both_stores!(versions_number_up_and_triggers_follow_the_current_one);

async fn a_failure_in_the_middle_of_a_deploy_leaves_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let user = store.create_user("ada", "h").await.unwrap();
    // Two triggers for one handler violate the triggers table's key after the
    // script and version rows are written: the whole deploy must roll back.
    let broken = version_of(&user.id, "s", vec![manual("same"), manual("same")]);
    assert!(store.create_script_version(&broken).await.is_err());
    assert!(store.list_scripts(&user.id).await.unwrap().is_empty());

    // And for an existing script, the failed version leaves the old one current.
    let v1 = store
        .create_script_version(&version_of(&user.id, "s", vec![manual("a")]))
        .await
        .unwrap();
    assert!(
        store
            .create_script_version(&version_of(&user.id, "s", vec![manual("x"), manual("x")]))
            .await
            .is_err()
    );
    let versions = store.list_versions(&user.id, &v1.script_id).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(store.triggers(&v1.script_id).await.unwrap(), [manual("a")]);
    assert_eq!(
        store
            .get_script(&user.id, &v1.script_id)
            .await
            .unwrap()
            .unwrap()
            .current_version,
        1
    );
}
on_both_stores!(a_failure_in_the_middle_of_a_deploy_leaves_nothing);

async fn credential_rows_upsert_and_stay_per_user(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let ada = store.create_user("ada", "h1").await.unwrap();
    let bob = store.create_user("bob", "h2").await.unwrap();
    let row = |user: &str, nonce: u8| roost::store::CredentialRow {
        user_id: user.into(),
        integration_id: "openai".into(),
        cred_key: "api_key".into(),
        key_id: "k1".into(),
        nonce: vec![nonce; 12],
        ciphertext: vec![1, 2, 3],
        placement: None,
        status: roost::store::CredentialStatus::Connected,
        updated_at: 1,
        expires_at: Some(5),
    };
    store.put_credentials(&[row(&ada.id, 1)]).await.unwrap();
    store
        .put_credentials(&[row(&ada.id, 2), row(&bob.id, 3)])
        .await
        .unwrap();
    let adas = store.credentials(&ada.id, None).await.unwrap();
    assert_eq!(adas.len(), 1);
    assert_eq!(adas[0].nonce, vec![2; 12]);
    assert_eq!(
        store
            .credentials(&ada.id, Some("gmail"))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        store.delete_credentials(&ada.id, "openai").await.unwrap(),
        1
    );
    assert_eq!(
        store
            .credentials(&bob.id, Some("openai"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.all_credentials().await.unwrap().len(), 1);
}
on_both_stores!(credential_rows_upsert_and_stay_per_user);

async fn a_worker_that_lost_its_run_cannot_finish_it(backend: Backend) {
    use roost::store::now_millis;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let user = store.create_user("ada", "h").await.unwrap();
    let run = queued_run(store.as_ref(), &user.id).await;
    let finish = outcome;
    // Node A claims it, goes silent; the reaper re-queues it; node B claims it.
    let claimed = store
        .claim_run("node_a-w0", 10, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, run.id);
    assert_eq!(
        store
            .requeue_stale_runs(now_millis() + 1, true)
            .await
            .unwrap(),
        1
    );
    store
        .claim_run("node_b-w0", 10, &[])
        .await
        .unwrap()
        .unwrap();
    // A comes back: its heartbeat and its outcome are refused.
    assert!(!store.heartbeat_run(&run.id, "node_a-w0").await.unwrap());
    assert!(
        !store
            .finish_run(&run.id, "node_a-w0", &finish("failed"), None)
            .await
            .unwrap()
    );
    assert!(store.heartbeat_run(&run.id, "node_b-w0").await.unwrap());
    assert!(
        store
            .finish_run(&run.id, "node_b-w0", &finish("succeeded"), None)
            .await
            .unwrap()
    );
    let done = store.get_run(&user.id, &run.id).await.unwrap().unwrap();
    assert_eq!(done.status, "succeeded");
    assert_eq!(done.worker_id.as_deref(), Some("node_b-w0"));
}
on_both_stores!(a_worker_that_lost_its_run_cannot_finish_it);

async fn nodes_report_and_are_forgotten(backend: Backend) {
    use roost::store::NodeRow;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let node = |id: &str, at: i64| NodeRow {
        id: id.into(),
        address: "127.0.0.1:1".into(),
        version: "0.1.0".into(),
        started_at: 1,
        heartbeat_at: at,
    };
    store.node_heartbeat(&node("node_a", 100)).await.unwrap();
    store.node_heartbeat(&node("node_b", 200)).await.unwrap();
    store.node_heartbeat(&node("node_a", 300)).await.unwrap();
    let nodes = store.nodes().await.unwrap();
    assert_eq!(
        nodes
            .iter()
            .map(|n| (n.id.as_str(), n.heartbeat_at))
            .collect::<Vec<_>>(),
        [("node_a", 300), ("node_b", 200)]
    );
    assert_eq!(store.forget_nodes(250).await.unwrap(), 1);
    assert_eq!(store.nodes().await.unwrap().len(), 1);
}
on_both_stores!(nodes_report_and_are_forgotten);

async fn method_calls_are_kept_with_their_run_and_go_with_it(backend: Backend) {
    use roost::store::{MethodCallRow, now_millis};
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let user = store.create_user("ada", "h").await.unwrap();
    let run = queued_run(store.as_ref(), &user.id).await;
    let call = |id: &str, status: &str, attempts: i64, at: i64| MethodCallRow {
        id: id.into(),
        run_id: run.id.clone(),
        integration: "acme".into(),
        method: "get_widget".into(),
        status: status.into(),
        http_status: (attempts > 0).then_some(200),
        duration_ms: 12,
        attempts,
        refreshed: attempts > 2,
        error: (status != "ok").then(|| "`id`: wrong type".to_string()),
        created_at: at,
    };
    let now = now_millis();
    let (second, first) = (
        call("call_2", "ok", 3, now + 1),
        call("call_1", "invalid_input", 0, now),
    );
    store.insert_method_call(&second).await.unwrap();
    store.insert_method_call(&first).await.unwrap();
    assert_eq!(
        store.method_calls(&run.id).await.unwrap(),
        vec![first, second]
    );
    assert!(store.method_calls("run_other").await.unwrap().is_empty());

    // A call for a run that does not exist is refused, not orphaned.
    let mut orphan = call("call_3", "ok", 1, now);
    orphan.run_id = "run_missing".into();
    assert!(store.insert_method_call(&orphan).await.is_err());

    // Purging old runs takes their calls with them.
    assert_eq!(
        store.delete_old_runs(now_millis() + 60_000).await.unwrap(),
        0
    );
    store.cancel_run(&user.id, &run.id).await.unwrap();
    assert_eq!(
        store.delete_old_runs(now_millis() + 60_000).await.unwrap(),
        1
    );
    assert!(store.method_calls(&run.id).await.unwrap().is_empty());
}
on_both_stores!(method_calls_are_kept_with_their_run_and_go_with_it);

fn on_event(handler: &str, event_type: &str) -> TriggerRow {
    TriggerRow {
        handler: handler.into(),
        kind: roost::store::TriggerKind::Event,
        spec: event_type.into(),
        timezone: None,
        flow: None,
    }
}

/// Events that arrive together (on SQLite: committed in one group) are
/// each turned into runs once, per user and id, with their payload intact.
async fn events_arriving_together_run_once_each(backend: Backend) {
    use roost::store::NewEvent;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let ada = store.create_user("ada", "h1").await.unwrap();
    let bob = store.create_user("bob", "h2").await.unwrap();
    let triggers = vec![
        on_event("a", "order.created"),
        on_event("b", "order.created"),
    ];
    store
        .create_script_version(&version_of(&ada.id, "two", triggers))
        .await
        .unwrap();
    store
        .create_script_version(&version_of(
            &bob.id,
            "one",
            vec![on_event("c", "order.paid")],
        ))
        .await
        .unwrap();
    // An id stored before the burst is a duplicate within it.
    let event = |user: &str, id: String, event_type: &str, n: usize| NewEvent {
        user_id: user.into(),
        event_id: id,
        event_type: event_type.into(),
        source: n.is_multiple_of(2).then(|| "shop".into()),
        payload: json!({ "n": n, "price": 1.5e-7, "name": "naïve \"quoted\"" }),
        source_run_id: None,
        chain_depth: 0,
    };
    let earlier = store
        .ingest_event(&event(&ada.id, "e0".into(), "order.created", 0))
        .await
        .unwrap();
    assert_eq!((earlier.duplicate, earlier.run_ids.len()), (false, 2));

    // 60 at once: ids e0..e9 for each user, each sent three times.
    let mut sends = Vec::new();
    for n in 0..60 {
        let store = store.clone();
        let (user, event_type) = if n % 2 == 0 {
            (ada.id.clone(), "order.created")
        } else {
            (bob.id.clone(), "order.paid")
        };
        let new = event(&user, format!("e{}", n % 10), event_type, n % 10);
        sends.push(tokio::spawn(async move {
            (new.clone(), store.ingest_event(&new).await.unwrap())
        }));
    }
    let mut by_id: std::collections::BTreeMap<(String, String), Vec<roost::store::EventIngest>> =
        Default::default();
    for send in sends {
        let (new, done) = send.await.unwrap();
        by_id
            .entry((new.user_id, new.event_id))
            .or_default()
            .push(done);
    }
    assert_eq!(by_id.len(), 10, "5 ids of Ada's and 5 of Bob's");
    for ((user, id), outcomes) in &by_id {
        let originals = outcomes.iter().filter(|o| !o.duplicate).count();
        let expected_originals = usize::from(!(user == &ada.id && id == "e0"));
        assert_eq!(
            originals, expected_originals,
            "{id} of {user}: {outcomes:?}"
        );
        let runs = if user == &ada.id { 2 } else { 1 };
        for outcome in outcomes {
            assert_eq!(outcome.run_ids.len(), runs, "{outcomes:?}");
            assert_eq!(
                outcome.run_ids, outcomes[0].run_ids,
                "every repeat names the same runs"
            );
        }
        if user == &ada.id && id == "e0" {
            assert_eq!(outcomes[0].run_ids, earlier.run_ids);
        }
        let stored = store.get_event(user, id).await.unwrap().unwrap();
        assert_eq!(stored.run_ids, outcomes[0].run_ids);
        for run_id in &outcomes[0].run_ids {
            let run = store.get_run(user, run_id).await.unwrap().unwrap();
            let n: usize = id[1..].parse().unwrap();
            assert_eq!(
                run.payload,
                event(user, id.clone(), "", n).payload,
                "payload kept exactly"
            );
            assert_eq!(
                (run.status.as_str(), run.trigger_kind.as_str()),
                ("queued", "event")
            );
        }
    }
    let filter = roost::store::RunFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        store.list_runs(&ada.id, &filter).await.unwrap().len(),
        5 * 2
    );
    assert_eq!(store.list_runs(&bob.id, &filter).await.unwrap().len(), 5);
}
on_both_stores!(events_arriving_together_run_once_each);

/// Claims that arrive together (on SQLite: one group) still hand each run
/// to one worker and stop at the script's concurrency cap; a finish in the
/// same group frees a slot for a claim after it.
async fn claims_arriving_together_respect_the_cap(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let user = store.create_user("ada", "h").await.unwrap();
    let first = queued_run(store.as_ref(), &user.id).await;
    for _ in 0..5 {
        let again = manual_run(&user.id, &first.script_id, json!({ "again": true }));
        store.enqueue_run(&again).await.unwrap();
    }
    // Idle workers claim (a worker holding runs counts once against the
    // cap, so the second round's workers are others).
    let claim_all = |prefix: &'static str, count: usize| {
        let store = store.clone();
        async move {
            let claims: Vec<_> = (0..count)
                .map(|n| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        store
                            .claim_run(&format!("{prefix}{n}"), 2, &[])
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut won = Vec::new();
            for claim in claims {
                won.extend(claim.await.unwrap());
            }
            won
        }
    };
    let won = claim_all("w", 6).await;
    assert_eq!(won.len(), 2, "the cap is 2: {won:?}");
    assert_ne!(won[0].id, won[1].id);
    let done = outcome("succeeded");
    // A finish hands its worker the next run: the finished one's slot.
    let worker = |run: &roost::store::RunRow| run.worker_id.clone().unwrap();
    let (recorded, next) =
        finish_and_claim(&*store, &won[0].id, &worker(&won[0]), &done, None, Some(2))
            .await
            .unwrap();
    assert!(recorded);
    let next = next.expect("the finished run's slot goes to the next run");
    assert_eq!(next.worker_id, won[0].worker_id);
    assert_eq!(next.status, "running");
    // A finish by a worker that no longer has the run frees no slot, so at
    // the cap it claims nothing either.
    let (recorded, none) =
        finish_and_claim(&*store, &won[1].id, "someone-else", &done, None, Some(2))
            .await
            .unwrap();
    assert!(!recorded);
    assert!(none.is_none(), "{none:?}");
    assert!(
        store
            .finish_run(&won[1].id, &worker(&won[1]), &done, None)
            .await
            .unwrap()
    );
    let more = claim_all("v", 4).await;
    assert_eq!(more.len(), 1, "one slot was freed: {more:?}");
    assert!(
        more.iter()
            .all(|r| r.id != won[0].id && r.id != won[1].id && r.id != next.id)
    );
    let first_done = store.get_run(&user.id, &won[0].id).await.unwrap().unwrap();
    assert_eq!(first_done.status, "succeeded");
}
on_both_stores!(claims_arriving_together_respect_the_cap);

/// A finish stands even when the claim made with it fails (here the next
/// queued run cannot be read back: its payload is not JSON). Were the
/// finish lost with the claim, the run would stay `running` and be run a
/// second time once its heartbeat went stale.
async fn a_finish_stands_when_the_claim_after_it_fails(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = support::database_url(backend, dir.path()).await;
    let store = roost::store::connect(&url).await.unwrap();
    let user = store.create_user("ada", "h").await.unwrap();
    let first = queued_run(store.as_ref(), &user.id).await;
    let claimed = store.claim_run("w1", 4, &[]).await.unwrap();
    assert_eq!(claimed.map(|run| run.id), Some(first.id.clone()));
    let unreadable = store
        .enqueue_run(&manual_run(&user.id, &first.script_id, json!({ "n": 2 })))
        .await
        .unwrap();
    corrupt_payload(backend, &url, &unreadable.id).await;
    let (recorded, next) = finish_and_claim(
        &*store,
        &first.id,
        "w1",
        &outcome("succeeded"),
        None,
        Some(4),
    )
    .await
    .expect("the finish stands though the claim failed");
    assert!(recorded);
    assert!(next.is_none(), "{next:?}");
    let finished = store.get_run(&user.id, &first.id).await.unwrap().unwrap();
    assert_eq!(finished.status, "succeeded");
    assert!(finished.finished_at.is_some());
}
on_both_stores!(a_finish_stands_when_the_claim_after_it_fails);

/// Writes a payload no reader can parse into run `run_id`, behind the
/// store's back.
async fn corrupt_payload(backend: Backend, url: &str, run_id: &str) {
    let sql = "UPDATE runs SET payload = 'not json' WHERE id = $1";
    let changed = match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let done = sqlx::query(sql).bind(run_id).execute(&pool).await;
            done.unwrap().rows_affected()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let done = sqlx::query(sql).bind(run_id).execute(&pool).await;
            done.unwrap().rows_affected()
        }
    };
    assert_eq!(changed, 1);
}

/// A write that fails among others arriving together (on SQLite: one
/// writer turn) fails alone: the events around it are stored with their
/// runs, a finish in the same turn is recorded, and the failed event left
/// nothing behind.
async fn a_failing_write_fails_alone(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let ada = store.create_user("ada", "h").await.unwrap();
    let script_id = store
        .create_script_version(&version_of(
            &ada.id,
            "listener",
            vec![manual("m"), on_event("a", "order.created")],
        ))
        .await
        .unwrap()
        .script_id;
    store
        .enqueue_run(&manual_run(&ada.id, &script_id, json!(null)))
        .await
        .unwrap();
    let claimed = store.claim_run("w0", 10, &[]).await.unwrap().unwrap();

    // The event of a user that does not exist breaks the events table's
    // foreign key; it is sent in the middle of the others.
    let mut sends = Vec::new();
    for n in 0..31 {
        let store = store.clone();
        let user = if n == 15 {
            "usr_missing".to_string()
        } else {
            ada.id.clone()
        };
        let new = order_created(&user, n);
        sends.push(tokio::spawn(async move { store.ingest_event(&new).await }));
    }
    let finish = {
        let store = store.clone();
        let run_id = claimed.id.clone();
        tokio::spawn(async move {
            finish_and_claim(
                &*store,
                &run_id,
                "w0",
                &outcome("succeeded"),
                None,
                Some(10),
            )
            .await
        })
    };
    for (n, send) in sends.into_iter().enumerate() {
        let done = send.await.unwrap();
        if n == 15 {
            assert!(done.is_err(), "the event of a missing user fails: {done:?}");
            continue;
        }
        let done = done.unwrap_or_else(|err| panic!("event {n} failed with the bad one: {err}"));
        assert_eq!(
            (done.duplicate, done.run_ids.len()),
            (false, 1),
            "event {n}"
        );
        let stored = store.get_event(&ada.id, &format!("e{n}")).await.unwrap();
        assert_eq!(stored.map(|e| e.run_ids), Some(done.run_ids));
    }
    let (recorded, next) = finish.await.unwrap().unwrap();
    assert!(recorded, "the finish in the same turn is recorded");
    let done = store.get_run(&ada.id, &claimed.id).await.unwrap().unwrap();
    assert_eq!(done.status, "succeeded");
    assert!(
        store
            .get_event("usr_missing", "e15")
            .await
            .unwrap()
            .is_none()
    );
    let filter = roost::store::RunFilter {
        limit: 100,
        ..Default::default()
    };
    let runs = store.list_runs(&ada.id, &filter).await.unwrap();
    assert_eq!(
        runs.len(),
        1 + 30,
        "the manual run and one run per stored event"
    );
    // The finish claimed the next run (an event's) for the same worker.
    if let Some(next) = next {
        assert_eq!(next.worker_id.as_deref(), Some("w0"));
    }
}
on_both_stores!(a_failing_write_fails_alone);

/// The queue cap reads `queue_depth` on every event and manual run; it
/// follows every way a run joins or leaves the queue, per user.
async fn the_queue_depth_follows_every_change_of_a_run(backend: Backend) {
    use roost::store::{RetryPlan, now_millis};
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let ada = store.create_user("ada", "h1").await.unwrap();
    let bob = store.create_user("bob", "h2").await.unwrap();
    let script_id = store
        .create_script_version(&version_of(
            &ada.id,
            "s",
            vec![manual("m"), on_event("a", "order.created")],
        ))
        .await
        .unwrap()
        .script_id;
    let depth = || async { store.queue_depth(&ada.id).await.unwrap().runs };
    assert_eq!(depth().await, 0);

    for _ in 0..3 {
        store
            .enqueue_run(&manual_run(&ada.id, &script_id, json!(null)))
            .await
            .unwrap();
    }
    let event = order_created(&ada.id, 1);
    store.ingest_event(&event).await.unwrap();
    store.ingest_event(&event).await.unwrap();
    assert_eq!(
        depth().await,
        4,
        "three manual runs and one event run; the repeat queues nothing"
    );

    let first = store.claim_run("w0", 10, &[]).await.unwrap().unwrap();
    assert_eq!(depth().await, 3, "a claim takes a run off the queue");
    let retry = RetryPlan {
        attempt: 2,
        first_run_id: first.id.clone(),
        not_before: now_millis() + 3_600_000,
    };
    store
        .finish_run(&first.id, "w0", &outcome("failed"), Some(&retry))
        .await
        .unwrap();
    assert_eq!(depth().await, 4, "a retry is queued");

    store.claim_run("w1", 10, &[]).await.unwrap().unwrap();
    assert_eq!(depth().await, 3);
    store
        .requeue_stale_runs(now_millis() + 1, true)
        .await
        .unwrap();
    assert_eq!(depth().await, 4, "a stale run is re-queued");
    store.claim_run("w2", 10, &[]).await.unwrap().unwrap();
    store
        .requeue_stale_runs(now_millis() + 1, false)
        .await
        .unwrap();
    assert_eq!(
        depth().await,
        3,
        "a stale run marked failed stays off the queue"
    );

    let filter = roost::store::RunFilter {
        limit: 100,
        ..Default::default()
    };
    let retry_run = store
        .list_runs(&ada.id, &filter)
        .await
        .unwrap()
        .into_iter()
        .find(|run| run.attempt == 2)
        .unwrap();
    assert!(store.cancel_run(&ada.id, &retry_run.id).await.unwrap());
    assert_eq!(depth().await, 2, "a cancelled run leaves the queue");

    // Both runs handed to a worker in one claim, and handed back unbegun.
    store.hold_run_starts(std::time::Duration::from_millis(20));
    let both = roost::store::NextClaim {
        per_script_limit: 10,
        runs: 2,
        workers: 1,
        skip_users: Vec::new(),
    };
    let handed = store
        .report_and_claim("w4", Vec::new(), Vec::new(), Some(both))
        .await
        .unwrap()
        .next;
    assert_eq!(handed.len(), 2);
    let unbegun = handed.iter().map(|run| run.id.clone()).collect();
    store
        .report_and_claim("w4", Vec::new(), unbegun, None)
        .await
        .unwrap();
    assert_eq!(depth().await, 2, "runs handed back are queued again");
    store.hold_run_starts(std::time::Duration::ZERO);

    let running = store.claim_run("w3", 10, &[]).await.unwrap().unwrap();
    let (_, next) = finish_and_claim(
        &*store,
        &running.id,
        "w3",
        &outcome("succeeded"),
        None,
        Some(10),
    )
    .await
    .unwrap();
    assert!(next.is_some());
    assert_eq!(
        depth().await,
        0,
        "the claim made with a finish takes the last run"
    );
    let purged = store.delete_old_runs(now_millis() + 1).await.unwrap();
    assert!(purged > 0);
    assert_eq!(depth().await, 0, "deleting finished runs changes nothing");

    store
        .enqueue_run(&manual_run(&ada.id, &script_id, json!(null)))
        .await
        .unwrap();
    queued_run(store.as_ref(), &bob.id).await;
    assert_eq!(
        (
            depth().await,
            store.queue_depth(&bob.id).await.unwrap().runs
        ),
        (1, 1)
    );
    assert!(store.delete_script(&ada.id, &script_id).await.unwrap());
    assert_eq!(
        depth().await,
        0,
        "deleting the script takes its runs off the queue"
    );
    assert_eq!(
        store.queue_depth(&bob.id).await.unwrap().runs,
        1,
        "another user's run stays counted"
    );
}
on_both_stores!(the_queue_depth_follows_every_change_of_a_run);

/// Caps of `runs` queued runs, and payload bytes enough for any test.
fn queue_of(runs: i64) -> roost::store::QueueLimits {
    roost::store::QueueLimits {
        runs,
        payload_bytes: i64::MAX,
    }
}

/// Events arriving together for a user near the queue cap: none is queued
/// past it on SQLite (the check and the ingest are one step there); every
/// refused one left nothing behind.
async fn events_arriving_together_stop_at_the_queue_cap(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let ada = user_listening_for_orders(store.as_ref()).await;
    let sends: Vec<_> = (0..40)
        .map(|n| {
            let store = store.clone();
            let event = order_created(&ada.id, n);
            tokio::spawn(async move { (n, store.ingest_event_within(&event, queue_of(10)).await) })
        })
        .collect();
    let mut accepted = Vec::new();
    for send in sends {
        let (n, done) = send.await.unwrap();
        match done {
            Ok(done) => {
                assert_eq!(done.run_ids.len(), 1);
                accepted.push(n);
            }
            Err(StoreError::QueueFull { queued }) => {
                assert!(queued >= 10, "refused at {queued} queued");
                let stored = store.get_event(&ada.id, &format!("e{n}")).await.unwrap();
                assert!(stored.is_none(), "refused event e{n} was stored");
            }
            Err(other) => panic!("event e{n}: {other}"),
        }
    }
    let queued = store.queue_depth(&ada.id).await.unwrap().runs;
    assert_eq!(queued, accepted.len() as i64, "one run per accepted event");
    assert!(accepted.len() >= 10, "the cap lets 10 in: {accepted:?}");
    if matches!(backend, Backend::Sqlite) {
        assert_eq!(accepted.len(), 10, "none passes the cap: {accepted:?}");
    }
    // A repeat of an accepted event is a repeat, not a refusal.
    let repeat = order_created(&ada.id, accepted[0]);
    assert!(
        store
            .ingest_event_within(&repeat, queue_of(10))
            .await
            .unwrap()
            .duplicate
    );
}
on_both_stores!(events_arriving_together_stop_at_the_queue_cap);

/// With starts held (`hold_run_starts`, as a server that re-queues orphans
/// asks), the run `finish_and_claim` hands out keeps every rule of a claim:
/// it counts against its script's cap, no other worker gets it, only its
/// worker ends it, and its end is stored with its start. On SQLite it reads
/// as queued until then; PostgreSQL writes every start at once.
async fn a_held_start_keeps_every_rule_of_a_claim(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    store.hold_run_starts(std::time::Duration::from_secs(600));
    let user = store.create_user("ada", "h").await.unwrap();
    let first = queued_run(store.as_ref(), &user.id).await;
    for n in 0..3 {
        let again = manual_run(&user.id, &first.script_id, json!({ "n": n }));
        store.enqueue_run(&again).await.unwrap();
    }
    // (Runs queued within one millisecond are claimed in any order.)
    let claimed = store.claim_run("w0", 2, &[]).await.unwrap().unwrap();
    let (recorded, held) = finish_and_claim(
        &*store,
        &claimed.id,
        "w0",
        &outcome("succeeded"),
        None,
        Some(2),
    )
    .await
    .unwrap();
    assert!(recorded);
    let held = held.expect("the finished run's slot goes to the next run");
    assert_eq!(
        (held.status.as_str(), held.worker_id.as_deref()),
        ("running", Some("w0"))
    );
    let stored = store.get_run(&user.id, &held.id).await.unwrap().unwrap();
    let expected = match backend {
        Backend::Sqlite => "queued",
        Backend::Postgres => "running",
    };
    assert_eq!(stored.status, expected, "{stored:?}");
    // The held run takes one of the script's two slots, and nobody else
    // gets it.
    let other = store.claim_run("w1", 2, &[]).await.unwrap().unwrap();
    assert_ne!(other.id, held.id);
    assert!(
        store.claim_run("w2", 2, &[]).await.unwrap().is_none(),
        "at the cap"
    );
    // Another worker cannot end it.
    let (recorded, _) = finish_and_claim(&*store, &held.id, "w1", &outcome("failed"), None, None)
        .await
        .unwrap();
    assert!(!recorded);
    let ended = outcome("succeeded");
    assert!(
        store
            .finish_run(&held.id, "w0", &ended, None)
            .await
            .unwrap()
    );
    let done = store.get_run(&user.id, &held.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status.as_str(), done.worker_id.as_deref()),
        ("succeeded", Some("w0"))
    );
    assert_eq!(done.started_at, held.started_at);
    assert!(done.finished_at >= done.started_at, "{done:?}");
    let logs = store.run_logs(&user.id, &held.id).await.unwrap().unwrap();
    assert_eq!(logs.stdout, ended.stdout);
    // One run left queued; the held one was counted off the queue once.
    assert_eq!(store.queue_depth(&user.id).await.unwrap().runs, 1);
    // Its slot is free again.
    assert!(store.claim_run("w2", 2, &[]).await.unwrap().is_some());
}
on_both_stores!(a_held_start_keeps_every_rule_of_a_claim);

/// A held start is written once its window ends, with nothing else
/// happening, or at the run's first heartbeat; a run cancelled while held
/// stays cancelled and its worker is told so.
async fn a_held_start_is_written_when_its_run_goes_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let user = store.create_user("ada", "h").await.unwrap();
    let first = queued_run(store.as_ref(), &user.id).await;
    for n in 0..3 {
        let again = manual_run(&user.id, &first.script_id, json!({ "n": n }));
        store.enqueue_run(&again).await.unwrap();
    }
    let hand_out = |window_ms: u64, finished: String| {
        let store = store.clone();
        async move {
            store.hold_run_starts(std::time::Duration::from_millis(window_ms));
            let (recorded, next) = finish_and_claim(
                &*store,
                &finished,
                "w0",
                &outcome("succeeded"),
                None,
                Some(10),
            )
            .await
            .unwrap();
            assert!(recorded, "{finished} not recorded (window {window_ms} ms)");
            next.unwrap()
        }
    };
    let claimed = store.claim_run("w0", 10, &[]).await.unwrap().unwrap();

    // The window ends: the writer writes the start by itself.
    let held = hand_out(100, claimed.id.clone()).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stored = loop {
        let stored = store.get_run(&user.id, &held.id).await.unwrap().unwrap();
        if stored.status != "queued" || std::time::Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(
        (stored.status.as_str(), stored.worker_id.as_deref()),
        ("running", Some("w0"))
    );
    assert_eq!(stored.started_at, held.started_at);
    assert!(store.heartbeat_run(&held.id, "w0").await.unwrap());

    // A heartbeat writes it at once.
    let beaten = hand_out(600_000, held.id.clone()).await;
    assert!(!store.heartbeat_run(&beaten.id, "w1").await.unwrap());
    assert!(store.heartbeat_run(&beaten.id, "w0").await.unwrap());
    let stored = store.get_run(&user.id, &beaten.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status.as_str(), stored.worker_id.as_deref()),
        ("running", Some("w0"))
    );

    // Cancelled while held: its heartbeat and its outcome are refused.
    let cancelled = hand_out(600_000, beaten.id.clone()).await;
    assert!(store.cancel_run(&user.id, &cancelled.id).await.unwrap());
    assert!(!store.heartbeat_run(&cancelled.id, "w0").await.unwrap());
    let late = outcome("succeeded");
    assert!(
        !store
            .finish_run(&cancelled.id, "w0", &late, None)
            .await
            .unwrap()
    );
    let stored = store
        .get_run(&user.id, &cancelled.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, "cancelled");
    assert_eq!(store.queue_depth(&user.id).await.unwrap().runs, 0);
}
on_both_stores!(a_held_start_is_written_when_its_run_goes_on);

/// A report of several runs, with runs given back unbegun.
fn report(run_id: &str, status: &str, started_at: i64) -> roost::store::RunReport {
    roost::store::RunReport {
        run_id: run_id.into(),
        finish: outcome(status),
        retry: None,
        started_at: Some(started_at),
    }
}

/// Given a window (`hold_run_starts`), a worker is handed several runs at
/// once: its share of the claimable runs, up to what it asked for. It
/// counts once against its script's cap, as it runs them one at a time; it
/// reports them together, each with its own start; and the runs it gives
/// back unbegun are queued again and claimable at once. SQLite holds their
/// starts; PostgreSQL writes them at the claim. A run whose start was
/// written is given back too, by its worker only.
async fn a_worker_is_handed_runs_to_run_in_turn(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    store.hold_run_starts(std::time::Duration::from_secs(600));
    let user = store.create_user("ada", "h").await.unwrap();
    let first = queued_run(store.as_ref(), &user.id).await;
    for n in 0..9 {
        let again = manual_run(&user.id, &first.script_id, json!({ "n": n }));
        store.enqueue_run(&again).await.unwrap();
    }
    let claimed = store.claim_run("w0", 2, &[]).await.unwrap().unwrap();
    let wanted = roost::store::NextClaim {
        per_script_limit: 2,
        runs: 8,
        workers: 2,
        skip_users: Vec::new(),
    };
    let reported = store
        .report_and_claim(
            "w0",
            vec![report(
                &claimed.id,
                "succeeded",
                claimed.started_at.unwrap(),
            )],
            Vec::new(),
            Some(wanted),
        )
        .await
        .unwrap();
    assert_eq!(reported.recorded, [true]);
    let handed = reported.next;
    // Nine claimable runs, two workers: five, not the eight asked for.
    assert_eq!(handed.len(), 5, "{handed:?}");
    for run in &handed {
        assert_eq!(
            (run.status.as_str(), run.worker_id.as_deref()),
            ("running", Some("w0"))
        );
    }
    // w0 runs one at a time: one slot of two. Another worker gets a run
    // w0 was not handed, and a third finds the script at its cap.
    let other = store.claim_run("w1", 2, &[]).await.unwrap().unwrap();
    assert!(handed.iter().all(|run| run.id != other.id));
    assert!(
        store.claim_run("w2", 2, &[]).await.unwrap().is_none(),
        "at the cap"
    );
    // Nobody but w0 reports w0's runs.
    let stray = store
        .report_and_claim(
            "w1",
            vec![report(&handed[0].id, "failed", 1)],
            Vec::new(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(stray.recorded, [false]);

    // w0 reports the first two (or the one) and gives back the rest.
    let ran = handed.len().min(2);
    let began = claimed.started_at.unwrap() + 5;
    let reports = handed[..ran]
        .iter()
        .enumerate()
        .map(|(n, run)| report(&run.id, "succeeded", began + n as i64))
        .collect();
    let given_back: Vec<String> = handed[ran..].iter().map(|run| run.id.clone()).collect();
    let reported = store
        .report_and_claim("w0", reports, given_back.clone(), None)
        .await
        .unwrap();
    assert_eq!(reported.recorded, vec![true; ran]);
    assert!(reported.next.is_empty(), "nothing asked for");
    for (n, run) in handed[..ran].iter().enumerate() {
        let done = store.get_run(&user.id, &run.id).await.unwrap().unwrap();
        assert_eq!(done.status, "succeeded");
        // Its start is when the worker began it: held until now
        // (SQLite), or corrected from its claim's (PostgreSQL).
        assert_eq!(done.started_at, Some(began + n as i64), "{done:?}");
    }
    for run_id in &given_back {
        let back = store.get_run(&user.id, run_id).await.unwrap().unwrap();
        assert_eq!(
            (back.status.as_str(), back.worker_id.as_deref()),
            ("queued", None)
        );
    }
    // Ten runs: the first claimed, w1's, and the reported ones are off the
    // queue; the given-back ones are on it.
    let queued = 10 - 2 - ran as i64;
    assert_eq!(store.queue_depth(&user.id).await.unwrap().runs, queued);

    // A started run is given back only by its worker.
    let kept = store
        .report_and_claim("w0", Vec::new(), vec![other.id.clone()], None)
        .await
        .unwrap();
    assert!(kept.recorded.is_empty());
    let still = store.get_run(&user.id, &other.id).await.unwrap().unwrap();
    assert_eq!(still.worker_id.as_deref(), Some("w1"));
    store
        .report_and_claim("w1", Vec::new(), vec![other.id.clone()], None)
        .await
        .unwrap();
    let back = store.get_run(&user.id, &other.id).await.unwrap().unwrap();
    assert_eq!(
        (
            back.status.as_str(),
            back.worker_id.as_deref(),
            back.started_at
        ),
        ("queued", None, None)
    );
    assert_eq!(store.queue_depth(&user.id).await.unwrap().runs, queued + 1);

    // Every run still queued is claimable again, the given-back ones too.
    let mut claimed_again = Vec::new();
    while let Some(run) = store.claim_run("w3", 10, &[]).await.unwrap() {
        claimed_again.push(run.id);
    }
    assert_eq!(claimed_again.len() as i64, queued + 1);
    for run_id in given_back.iter().chain([&other.id]) {
        assert!(claimed_again.contains(run_id), "{run_id} not claimed again");
    }
}
on_both_stores!(a_worker_is_handed_runs_to_run_in_turn);

/// Runs are handed out several at once only while starts are held: a
/// written start would make a run waiting in the worker's hands read as
/// running. Of the runs handed to a worker together, only the first has
/// its start written when the window ends: the worker runs them in order,
/// and the others have not begun.
async fn only_the_run_a_worker_is_on_has_its_held_start_written(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let user = store.create_user("ada", "h").await.unwrap();
    let first = queued_run(store.as_ref(), &user.id).await;
    for n in 0..5 {
        let again = manual_run(&user.id, &first.script_id, json!({ "n": n }));
        store.enqueue_run(&again).await.unwrap();
    }
    let wanted = roost::store::NextClaim {
        per_script_limit: 10,
        runs: 3,
        workers: 1,
        skip_users: Vec::new(),
    };
    let claimed = store.claim_run("w0", 10, &[]).await.unwrap().unwrap();
    let began = claimed.started_at.unwrap();
    let unheld = store
        .report_and_claim(
            "w0",
            vec![report(&claimed.id, "succeeded", began)],
            Vec::new(),
            Some(wanted.clone()),
        )
        .await
        .unwrap()
        .next;
    assert_eq!(unheld.len(), 1, "starts are not held: one run");
    let stored = store
        .get_run(&user.id, &unheld[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, "running");

    store.hold_run_starts(std::time::Duration::from_millis(300));
    let handed = store
        .report_and_claim(
            "w0",
            vec![report(&unheld[0].id, "succeeded", began)],
            Vec::new(),
            Some(wanted),
        )
        .await
        .unwrap()
        .next;
    let status = |run_id: String| {
        let store = store.clone();
        let user_id = user.id.clone();
        async move {
            let run = store.get_run(&user_id, &run_id).await.unwrap().unwrap();
            run.status
        }
    };
    // The window ends: the first run's start is written (on PostgreSQL,
    // at its claim). The others wait a window more.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while status(handed[0].id.clone()).await != "running" {
        assert!(std::time::Instant::now() < deadline, "never written");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut statuses = Vec::new();
    for run in &handed[1..] {
        statuses.push(status(run.id.clone()).await);
    }
    let expected = match backend {
        Backend::Sqlite => vec!["queued"; 2],
        Backend::Postgres => vec!["running"; 2],
    };
    assert_eq!(statuses, expected);
    // The worker is still running its first run when it gives back the
    // others; none of them was started.
    let rest: Vec<String> = handed[1..].iter().map(|run| run.id.clone()).collect();
    store
        .report_and_claim("w0", Vec::new(), rest, None)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(store.queue_depth(&user.id).await.unwrap().runs, 3);
}
on_both_stores!(only_the_run_a_worker_is_on_has_its_held_start_written);

/// Listing by status, for the statuses SQLite reads from an index of their
/// own (queued, running) and one it does not: only the user's runs, newest
/// first, with the other filters applied.
async fn runs_are_listed_by_status(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let ada = store.create_user("ada", "h").await.unwrap();
    let bob = store.create_user("bob", "h2").await.unwrap();
    let first = queued_run(store.as_ref(), &ada.id).await;
    let mut queued = vec![first.clone()];
    for n in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let again = manual_run(&ada.id, &first.script_id, json!({ "n": n }));
        queued.push(store.enqueue_run(&again).await.unwrap());
    }
    queued_run(store.as_ref(), &bob.id).await;
    let running = store.claim_run("w0", 10, &[]).await.unwrap().unwrap();
    assert_eq!(running.id, first.id, "the oldest run (2 ms apart)");
    let done = store.claim_run("w1", 10, &[]).await.unwrap().unwrap();
    assert!(
        store
            .finish_run(&done.id, "w1", &outcome("failed"), None)
            .await
            .unwrap()
    );
    let list = |status: &str, script: Option<&str>, before: Option<i64>| {
        let filter = roost::store::RunFilter {
            status: Some(status.parse().unwrap()),
            script_id: script.map(str::to_string),
            before,
            limit: 10,
            ..Default::default()
        };
        let store = store.clone();
        let user = ada.id.clone();
        async move {
            let runs = store.list_runs(&user, &filter).await.unwrap();
            runs.into_iter().map(|run| run.id).collect::<Vec<_>>()
        }
    };
    let newest_first: Vec<String> = queued[2..].iter().rev().map(|r| r.id.clone()).collect();
    assert_eq!(list("queued", None, None).await, newest_first);
    assert_eq!(
        list("queued", Some(&first.script_id), None).await,
        newest_first
    );
    assert!(list("queued", Some("scr_other"), None).await.is_empty());
    let before_newest = Some(queued[3].queued_at);
    assert_eq!(
        list("queued", None, before_newest).await,
        vec![queued[2].id.clone()]
    );
    assert_eq!(list("running", None, None).await, vec![running.id.clone()]);
    assert_eq!(
        list("running", Some(&first.script_id), None).await,
        vec![running.id]
    );
    assert_eq!(list("failed", None, None).await, vec![done.id]);
    assert!(list("succeeded", None, None).await.is_empty());
}
on_both_stores!(runs_are_listed_by_status);

/// SQLite copies its WAL back into the database beside the writer, but a
/// copy that new writes keep overtaking never lets the WAL start over. Under
/// writes that never pause it must still stay bounded: at its limit (here
/// 32 MiB), plus what the writer writes before it rewinds the WAL. (Without
/// the bound, this test's WAL reached 216 MiB.)
#[tokio::test]
async fn sqlite_wal_stays_bounded_under_writes_that_never_pause() {
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let url = roost::config::sqlite_url(dir.path());
    let store = roost::store::connect_sqlite_with_wal_limit(&url, 32 * MIB)
        .await
        .unwrap();
    let ada = user_listening_for_orders(store.as_ref()).await;
    let wal = dir.path().join("roost.db-wal");
    let filler = "x".repeat(64 * 1024);
    let mut largest = 0;
    // 2,000 events of 64 KiB, back to back: 128 MiB through the WAL.
    for n in 0..2_000 {
        let mut event = order_created(&ada.id, n);
        event.payload = json!({ "n": n, "filler": filler });
        store.ingest_event(&event).await.unwrap();
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    assert!(
        largest > 16 * MIB,
        "the writes did not fill the WAL ({largest} bytes)"
    );
    assert!(largest < 72 * MIB, "the WAL grew to {} MiB", largest / MIB);
    assert_eq!(store.queue_depth(&ada.id).await.unwrap().runs, 2_000);
}

/// A claim passes over the queued runs of the users it is told to skip
/// (those at their share of a node's workers), however many they have
/// queued ahead of another user's; with only theirs queued it hands out
/// nothing, and the next claim without them takes the oldest.
async fn a_claim_passes_over_skipped_users(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let mut scripts = Vec::new();
    for name in ["ada", "bob"] {
        let user = store.create_user(name, name).await.unwrap();
        let script = store
            .create_script_version(&version_of(&user.id, "s", vec![manual("m")]))
            .await
            .unwrap()
            .script_id;
        scripts.push((user.id, script));
    }
    let (ada, ada_script) = &scripts[0];
    let (bob, bob_script) = &scripts[1];
    let mut ada_runs = Vec::new();
    for _ in 0..50 {
        let run = store
            .enqueue_run(&manual_run(ada, ada_script, json!(null)))
            .await
            .unwrap();
        ada_runs.push((run.queued_at, run.id));
    }
    ada_runs.sort();
    let skip_ada = [ada.clone()];
    assert!(
        store
            .claim_run("w0", 100, &skip_ada)
            .await
            .unwrap()
            .is_none()
    );

    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let bobs = store
        .enqueue_run(&manual_run(bob, bob_script, json!(null)))
        .await
        .unwrap();
    let claimed = store
        .claim_run("w0", 100, &skip_ada)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, bobs.id, "Bob's run, behind fifty of Ada's");
    let claimed = store.claim_run("w1", 100, &[]).await.unwrap().unwrap();
    assert_eq!(claimed.id, ada_runs[0].1, "without skips, the oldest");
}
on_both_stores!(a_claim_passes_over_skipped_users);
