//! Events that arrive together: PostgreSQL writes them several to a
//! statement, SQLite through its writer. Either way a repeated id runs
//! once, the queue cap holds exactly on one node, and (PostgreSQL) runs
//! queued at one node wake another node's idle workers at once.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Backend, TestApp};

/// Posts `bodies` to /v1/events/order.created at once; each answer's
/// status and body, in order.
async fn post_together(app: &TestApp, token: &str, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let bases = vec![app.base.clone(); bodies.len()];
    post_together_at(app, &bases, token, bodies).await
}

/// `post_together`, each body to the node at the base beside it.
async fn post_together_at(
    app: &TestApp,
    bases: &[String],
    token: &str,
    bodies: Vec<Value>,
) -> Vec<(u16, Value)> {
    let posts: Vec<_> = bodies
        .into_iter()
        .zip(bases)
        .map(|(body, base)| {
            let request = app
                .client
                .post(format!("{base}/v1/events/order.created"))
                .bearer_auth(token)
                .json(&body);
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for post in posts {
        answers.push(post.await.unwrap());
    }
    answers
}

async fn an_event_id_posted_twice_at_once_runs_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bases = vec![app.base.clone(); 40];
    each_id_runs_once(&app, &bases).await;
}
on_both_stores!(an_event_id_posted_twice_at_once_runs_once);

/// The same across two nodes: an id whose event the other node recorded
/// meanwhile leaves that batch and is settled on its own.
#[tokio::test]
async fn an_event_id_posted_to_two_nodes_at_once_runs_once() {
    if support::postgres_base_url().is_none() {
        eprintln!("skipped: set ROOST_TEST_POSTGRES_URL to run it on PostgreSQL");
        return;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let other = roost::app::Application::build(app.config.clone())
        .await
        .expect("building the second node");
    let other_base = format!("http://127.0.0.1:{}", other.port());
    tokio::spawn(other.run_until(std::future::pending()));
    let bases: Vec<String> = (0..40)
        .map(|n| match n % 2 {
            0 => app.base.clone(),
            _ => other_base.clone(),
        })
        .collect();
    each_id_runs_once(&app, &bases).await;
}

/// Posts twenty ids, each twice side by side (to `bases`, in turn): each
/// id is answered with one set of runs, once as new, and runs once.
async fn each_id_runs_once(app: &TestApp, bases: &[String]) {
    let ada = app.user("ada").await;
    assert_eq!(
        app.deploy(&ada, "echo", &roost_tests::example("event-echo"))
            .await
            .0,
        201
    );
    // Twenty ids, each posted twice side by side.
    let bodies = (0..40)
        .map(|n| json!({ "id": format!("evt-{}", n / 2), "payload": { "n": n / 2 } }))
        .collect();
    let answers = post_together_at(app, bases, &ada, bodies).await;
    for pair in answers.chunks(2) {
        let [(first, a), (second, b)] = pair else {
            unreachable!()
        };
        assert_eq!((*first, *second), (202, 202), "{a} {b}");
        assert_eq!(
            a["run_ids"], b["run_ids"],
            "one id, one set of runs: {a} {b}"
        );
        assert_eq!(a["run_ids"].as_array().unwrap().len(), 1, "{a}");
        let fresh = [&a["duplicate"], &b["duplicate"]]
            .iter()
            .filter(|d| **d == false)
            .count();
        assert_eq!(fresh, 1, "one answer is the event's, one a repeat: {a} {b}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, runs) = app.get(&ada, "/v1/runs?limit=100").await;
        let runs = runs["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 20, "one run per id: {runs:?}");
        if runs.iter().all(|run| run["status"] == "succeeded") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the runs did not finish: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn the_queue_cap_holds_for_events_posted_together(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.abuse.max_queued_runs_per_user = 5;
        // No workers: runs stay queued.
        config.runner.workers = 0;
    })
    .await;
    let ada = app.user("ada").await;
    assert_eq!(
        app.deploy(&ada, "echo", &roost_tests::example("event-echo"))
            .await
            .0,
        201
    );
    let bodies = (0..30).map(|n| json!({ "payload": { "n": n } })).collect();
    let answers = post_together(&app, &ada, bodies).await;
    let accepted = answers.iter().filter(|(status, _)| *status == 202).count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 202)
        .collect();
    assert_eq!(accepted, 5, "exactly the cap is queued: {answers:?}");
    assert!(
        refused
            .iter()
            .all(|(status, body)| *status == 429 && body["error"]["code"] == "queue_full"),
        "the rest are refused as a full queue: {refused:?}"
    );
    let (_, runs) = app.get(&ada, "/v1/runs?limit=100").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 5, "{runs}");
}
on_both_stores!(the_queue_cap_holds_for_events_posted_together);

/// A node with no workers takes the events; another, whose workers would
/// look at the queue only every 30 s, runs them at once: woken by
/// PostgreSQL's notice of the queued runs.
#[tokio::test]
async fn runs_queued_at_one_node_wake_another_nodes_workers() {
    if support::postgres_base_url().is_none() {
        eprintln!("skipped: set ROOST_TEST_POSTGRES_URL to run it on PostgreSQL");
        return;
    }
    let app = TestApp::spawn_with(Backend::Postgres, |config| {
        config.runner.workers = 0;
        config.runner.poll = Duration::from_secs(30);
    })
    .await;
    let mut worker_node = app.config.clone();
    worker_node.runner.workers = 2;
    let _worker = roost::app::Application::build(worker_node)
        .await
        .expect("building the worker node");
    let worker_base = format!("http://127.0.0.1:{}", _worker.port());
    tokio::spawn(_worker.run_until(std::future::pending()));
    let ada = app.user("ada").await;
    assert_eq!(
        app.deploy(&ada, "echo", &roost_tests::example("event-echo"))
            .await
            .0,
        201
    );
    // Past the worker node's first look at the queue.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..3 {
        let posted = Instant::now();
        let answers = post_together(&app, &ada, vec![json!({ "payload": { "n": n } })]).await;
        let run_id = answers[0].1["run_ids"][0].as_str().unwrap().to_string();
        loop {
            let run: Value = app
                .client
                .get(format!("{worker_base}/v1/runs/{run_id}"))
                .bearer_auth(&ada)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if run["run"]["status"] == "succeeded" {
                break;
            }
            assert!(
                posted.elapsed() < Duration::from_secs(10),
                "the other node's workers were not woken: {run}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
