//! The store's side of runs begun outside the queue (HTTP requests run by
//! the node that received them): `record_ended` writes the run, its
//! outcome and its effects at once, or a failure with none of them when
//! its state writes are refused; `record_started` makes a running run that
//! heart-beats, finishes and is re-queued like a claimed one.

mod support;

use roost::store::{
    HttpReply, MessageFilter, MessageRow, NewRun, RunStatus, StartedRun, StateChange, StateWrites,
    Store, TriggerKind, new_id, now_millis,
};
use serde_json::json;
use support::{Backend, open_store, succeeded_with};

/// A user's script, and an HTTP request's run of it begun by `worker`.
async fn begun(store: &dyn Store, worker: &str) -> StartedRun {
    let user = store.create_user("ada", "h").await.unwrap();
    let script_id = support::bare_script(store, &user.id).await;
    StartedRun {
        id: new_id("run"),
        run: NewRun {
            user_id: user.id,
            script_id,
            script_version: 1,
            handler: Some("orders".into()),
            trigger_kind: TriggerKind::Http,
            trigger_spec: "POST /orders".into(),
            payload: json!({ "method": "POST" }),
            not_before: None,
        },
        worker_id: worker.into(),
        started_at: now_millis() - 5,
    }
}

/// A success that answered, left a message and set `count`, expecting
/// `count` to hold `expected`.
fn answered(run: &StartedRun, expected: Option<&str>) -> roost::store::RunFinish {
    let mut finish = succeeded_with(vec![MessageRow {
        id: new_id("msg"),
        user_id: run.run.user_id.clone(),
        script_id: run.run.script_id.clone(),
        run_id: run.id.clone(),
        channel: None,
        recipient: None,
        subject: None,
        body: "sent".into(),
        created_at: now_millis(),
    }]);
    finish.effects.script_id = run.run.script_id.clone();
    finish.effects.state = StateWrites {
        changes: vec![StateChange {
            key: "count".into(),
            value: Some("1".into()),
            expires_at: None,
        }],
        expected: vec![("count".into(), expected.map(str::to_string))],
        quota: Default::default(),
    };
    finish.effects.http_response = Some(HttpReply {
        status: 201,
        headers: vec![("x-a".into(), "1".into())],
        body: b"made".to_vec(),
    });
    finish
}

/// How many outbox messages `user` has.
async fn messages_of(store: &dyn Store, user: &str) -> usize {
    let filter = MessageFilter {
        limit: 10,
        ..Default::default()
    };
    store.list_messages(user, &filter).await.unwrap().len()
}

async fn a_run_recorded_with_its_end_keeps_its_effects_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let run = begun(store.as_ref(), "node-here").await;
    let (user, script) = (&run.run.user_id, &run.run.script_id);

    let status = store
        .record_ended(&run, &answered(&run, None))
        .await
        .unwrap();
    assert_eq!(status, RunStatus::Succeeded);
    let row = store.get_run(user, &run.id).await.unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Succeeded);
    assert_eq!(row.trigger_kind, TriggerKind::Http);
    assert_eq!(row.started_at, Some(run.started_at));
    assert_eq!(row.worker_id.as_deref(), Some("node-here"));
    assert!(row.finished_at.is_some());
    let reply = store.http_response(&run.id).await.unwrap().unwrap();
    assert_eq!((reply.status, reply.body.as_slice()), (201, &b"made"[..]));
    let count = store.state_entry(script, "count").await.unwrap().unwrap();
    assert_eq!(count.run_id.as_deref(), Some(run.id.as_str()));
    assert_eq!(messages_of(store.as_ref(), user).await, 1);
    // Nothing is left queued, and the same run cannot be recorded twice.
    assert_eq!(store.queue_depth(user).await.unwrap().runs, 0);
    assert!(store.claim_run("w", 10, &[]).await.unwrap().is_none());
    assert!(
        store
            .record_ended(&run, &answered(&run, None))
            .await
            .is_err()
    );
    assert_eq!(
        messages_of(store.as_ref(), user).await,
        1,
        "a second record wrote nothing"
    );

    // A run whose compare-and-set was overtaken is recorded failed, with
    // none of its effects and no retry.
    let second = StartedRun {
        id: new_id("run"),
        ..run.clone()
    };
    let status = store
        .record_ended(&second, &answered(&second, None))
        .await
        .unwrap();
    assert_eq!(status, RunStatus::Failed);
    let row = store.get_run(user, &second.id).await.unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Failed);
    assert!(row.error.unwrap().contains("state key `count` changed"));
    assert!(store.http_response(&second.id).await.unwrap().is_none());
    let count = store.state_entry(script, "count").await.unwrap().unwrap();
    assert_eq!(count.run_id.as_deref(), Some(run.id.as_str()));
    assert_eq!(messages_of(store.as_ref(), user).await, 1);
    assert!(store.claim_run("w", 10, &[]).await.unwrap().is_none());
}
on_both_stores!(a_run_recorded_with_its_end_keeps_its_effects_once);

async fn a_run_recorded_when_it_begins_lives_as_a_claimed_one(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let run = begun(store.as_ref(), "node-here").await;
    let user = &run.run.user_id;

    store.record_started(&run).await.unwrap();
    let row = store.get_run(user, &run.id).await.unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Running);
    assert!(row.heartbeat_at.unwrap() >= run.started_at);
    assert!(store.heartbeat_run(&run.id, "node-here").await.unwrap());
    assert!(!store.heartbeat_run(&run.id, "someone-else").await.unwrap());
    // It counts against its script's cap: a queued run of the script
    // waits while the cap is one.
    store.enqueue_run(&run.run).await.unwrap();
    assert!(store.claim_run("w", 1, &[]).await.unwrap().is_none());
    assert!(
        store
            .finish_run(&run.id, "node-here", &answered(&run, None), None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_run(user, &run.id).await.unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    assert!(store.http_response(&run.id).await.unwrap().is_some());
    assert!(store.claim_run("w", 1, &[]).await.unwrap().is_some());

    // Its node dies: once its heartbeat is stale it is queued again.
    let orphan = StartedRun {
        id: new_id("run"),
        ..run.clone()
    };
    store.record_started(&orphan).await.unwrap();
    let requeued = store
        .requeue_stale_runs(now_millis() + 1, true)
        .await
        .unwrap();
    assert!(requeued >= 1);
    assert_eq!(
        store
            .get_run(user, &orphan.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        RunStatus::Queued
    );
}
on_both_stores!(a_run_recorded_when_it_begins_lives_as_a_claimed_one);
