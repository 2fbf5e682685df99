//! Several `roost serve` processes as one cluster: one PostgreSQL database
//! and one NATS JetStream stream, both real. Each test has its own database,
//! stream and subject prefix. Skipped (saying so) unless both
//! ROOST_TEST_POSTGRES_URL and ROOST_TEST_NATS_URL are set, as `.ci/run` does.

mod support;

/// The operator's token of every node (`/v1/cluster`, `/metrics`).
const OPERATOR: &str = "operator-token-for-the-cluster-tests";

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use roost::auth::{hash_token, new_token};
use serde_json::{Value, json};
use support::{Backend, b64, database_url, postgres_base_url};

/// One `roost serve` process; killed when dropped.
struct Node {
    child: Child,
    url: String,
}

impl Node {
    fn kill_hard(&mut self) {
        Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database, a stream and a shared master key; nodes join it.
struct Cluster {
    database_url: String,
    nats_url: String,
    stream: String,
    prefix: String,
    master_key: String,
    dir: tempfile::TempDir,
    client: reqwest::Client,
    token: String,
}

fn nats_url() -> Option<String> {
    std::env::var("ROOST_TEST_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

impl Cluster {
    /// None (after saying why) when PostgreSQL or NATS is not configured.
    async fn new() -> Option<Self> {
        let (Some(_), Some(nats_url)) = (postgres_base_url(), nats_url()) else {
            eprintln!(
                "skipped: set ROOST_TEST_POSTGRES_URL and ROOST_TEST_NATS_URL to run the cluster tests"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let database_url = database_url(Backend::Postgres, dir.path()).await;
        let store = roost::store::connect(&database_url).await.unwrap();
        let token = new_token();
        store.create_user("ada", &hash_token(&token)).await.unwrap();
        let unique = hex::encode(rand::random::<[u8; 5]>());
        Some(Self {
            database_url,
            nats_url,
            stream: format!("ROOST_TEST_{unique}"),
            prefix: format!("t{unique}"),
            master_key: base64::engine::general_purpose::STANDARD
                .encode(rand::random::<[u8; 32]>()),
            dir,
            client: reqwest::Client::new(),
            token,
        })
    }

    /// Starts a node with `workers` workers; returns once it listens.
    fn start(&self, name: &str, workers: usize) -> Node {
        let data_dir = self.dir.path().join(name);
        // The tests post faster than the default per-token rate allows.
        std::fs::create_dir_all(&data_dir).unwrap();
        std::fs::write(
            data_dir.join("roost.toml"),
            format!("api_requests_per_sec = 100000.0\napi_burst = 100000\noperator_token = \"{OPERATOR}\"\n"),
        )
        .unwrap();
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--database-url", &self.database_url])
            .args(["--nats-url", &self.nats_url])
            .args(["--nats-stream", &self.stream])
            .args(["--nats-subject-prefix", &self.prefix])
            .args(["--workers", &workers.to_string()])
            // One user owns every run here: all of a node's workers are its.
            .args(["--max-running-per-user", &workers.max(1).to_string()])
            .args(["--run-stale-secs", "2"])
            .env("ROOST_DATA_DIR", &data_dir)
            .env("ROOST_MASTER_KEY", &self.master_key)
            .env("ROOST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting roost serve");
        let url = support::serve::listening_url(&mut child, Some(log));
        Node { child, url }
    }

    /// `GET /v1/cluster` of `node`, with the operator's token.
    async fn operator_view(&self, node: &Node) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/v1/cluster", node.url))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn deploy(&self, node: &Node, example: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                format!("{}/v1/scripts/deploy", node.url),
                Some(json!({ "name": example, "component": b64(&roost_tests::example(example)) })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["script_id"].as_str().unwrap().to_string()
    }

    /// This node's id, as it reports itself.
    async fn node_id(&self, node: &Node) -> String {
        let (status, body) = self.operator_view(node).await;
        assert_eq!(status, 200, "{body}");
        body["this_node"].as_str().unwrap().to_string()
    }

    async fn query(&self, sql: &str) -> Vec<sqlx::postgres::PgRow> {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(&self.database_url)
            .await
            .unwrap();
        sqlx::query(sql).fetch_all(&mut connection).await.unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        use sqlx::Row;
        self.query(sql).await[0].get::<i64, _>(0)
    }

    /// Waits until `sql` (a count) reaches `want`, or panics after `limit`.
    async fn wait_for_count(&self, sql: &str, want: i64, limit: Duration) {
        let start = Instant::now();
        loop {
            let n = self.count(sql).await;
            if n == want {
                return;
            }
            if start.elapsed() >= limit {
                use sqlx::Row;
                let runs: Vec<String> = self
                    .query("SELECT status, COALESCE(error, '') AS error, COALESCE(worker_id, '') AS worker FROM runs")
                    .await
                    .iter()
                    .map(|r| format!("{} {} {}", r.get::<String, _>("status"), r.get::<String, _>("worker"), r.get::<String, _>("error")))
                    .collect();
                let logs: Vec<String> = std::fs::read_dir(self.dir.path())
                    .unwrap()
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect();
                panic!(
                    "`{sql}` is {n}, not {want}, after {limit:?}\nruns:\n{}\nlogs:\n{}",
                    runs.join("\n"),
                    logs.join("\n----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_dir(&self) -> &Path {
        self.dir.path()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_second_cron_runs_once_per_tick_across_three_nodes() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let nodes: Vec<Node> = (0..3).map(|i| cluster.start(&format!("n{i}"), 2)).collect();
    let script = cluster.deploy(&nodes[0], "every-second").await;
    // Ticks must not be skipped for overlapping while a run is queued.
    let (status, body) = cluster
        .call(
            reqwest::Method::PATCH,
            format!("{}/v1/scripts/{script}/schedules/second", nodes[1].url),
            Some(json!({ "overlap": "allow" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    tokio::time::sleep(Duration::from_secs(62)).await;
    let (status, _) = cluster
        .call(
            reqwest::Method::DELETE,
            format!("{}/v1/scripts/{script}", nodes[2].url),
            None,
        )
        .await;
    assert_eq!(status, 204);

    use sqlx::Row;
    let ticks: Vec<i64> = cluster
        .query("SELECT tick_at FROM schedule_ticks ORDER BY tick_at")
        .await
        .iter()
        .map(|row| row.get::<i64, _>("tick_at"))
        .collect();
    let distinct: BTreeSet<i64> = ticks.iter().copied().collect();
    assert_eq!(distinct.len(), ticks.len(), "a tick was recorded twice");
    assert!(ticks.len() >= 55, "only {} ticks in 62 s", ticks.len());
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "a gap between ticks {pair:?}");
    }
    let runs = cluster
        .count("SELECT COUNT(*) FROM runs WHERE trigger_kind = 'schedule'")
        .await;
    assert_eq!(runs as usize, ticks.len(), "one run per tick");
    let payload_ticks = cluster
        .count("SELECT COUNT(DISTINCT payload) FROM runs WHERE trigger_kind = 'schedule'")
        .await;
    assert_eq!(payload_ticks as usize, ticks.len());
    drop(nodes);
    let _ = cluster.log_dir();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_events_round_robin_make_a_thousand_runs() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let nodes: Vec<Node> = (0..3).map(|i| cluster.start(&format!("n{i}"), 2)).collect();
    cluster.deploy(&nodes[0], "event-echo").await;

    let posts = futures_util::stream::iter(0..1000).map(|i| {
        let url = format!("{}/v1/events/order.created", nodes[i % 3].url);
        let cluster = &cluster;
        async move {
            let (status, body) = cluster
                .call(
                    reqwest::Method::POST,
                    url,
                    Some(json!({ "id": format!("order-{i}"), "payload": { "order": i } })),
                )
                .await;
            assert_eq!(status, 202, "{body}");
            assert_eq!(body["duplicate"], false);
            assert!(body["stream_sequence"].as_u64().is_some(), "{body}");
        }
    });
    use futures_util::StreamExt;
    posts.buffer_unordered(24).collect::<Vec<()>>().await;
    // Sending some again, to other nodes, changes nothing.
    for i in (0..1000).step_by(50) {
        let (status, body) = cluster
            .call(
                reqwest::Method::POST,
                format!("{}/v1/events/order.created", nodes[(i + 1) % 3].url),
                Some(json!({ "id": format!("order-{i}"), "payload": { "order": i } })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }

    cluster
        .wait_for_count(
            "SELECT COUNT(*) FROM runs WHERE trigger_kind = 'event' AND status = 'succeeded'",
            1000,
            Duration::from_secs(180),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await; // let redeliveries, if any, land
    assert_eq!(
        cluster
            .count("SELECT COUNT(*) FROM runs WHERE trigger_kind = 'event'")
            .await,
        1000
    );
    assert_eq!(cluster.count("SELECT COUNT(*) FROM events").await, 1000);
    assert_eq!(
        cluster
            .count("SELECT COUNT(DISTINCT payload) FROM runs WHERE trigger_kind = 'event'")
            .await,
        1000
    );
    // Any node answers for any event, and the metrics agree.
    let (status, event) = cluster
        .call(
            reqwest::Method::GET,
            format!("{}/v1/events/order-7", nodes[2].url),
            None,
        )
        .await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["run_ids"].as_array().unwrap().len(), 1);
    let metrics = cluster
        .client
        .get(format!("{}/metrics", nodes[1].url))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("roost_runs{status=\"succeeded\"} 1000"),
        "{metrics}"
    );
    assert!(metrics.contains("roost_queue_depth 0"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_of_a_killed_node_are_finished_once_by_the_survivors() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let mut nodes: Vec<Node> = (0..3).map(|i| cluster.start(&format!("n{i}"), 2)).collect();
    let victim_id = cluster.node_id(&nodes[2]).await;
    let script = cluster.deploy(&nodes[0], "sleeper").await;
    // Only the victim works at first, so it surely holds runs when killed.
    drop(nodes.drain(0..2).collect::<Vec<_>>());
    let mut run_ids = Vec::new();
    for _ in 0..4 {
        let (status, body) = cluster
            .call(
                reqwest::Method::POST,
                format!("{}/v1/scripts/{script}/run", nodes[0].url),
                Some(json!({ "payload": { "ms": 3000 } })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        run_ids.push(body["run_id"].as_str().unwrap().to_string());
    }
    cluster
        .wait_for_count(
            &format!("SELECT COUNT(*) FROM runs WHERE status = 'running' AND worker_id LIKE '{victim_id}-%'"),
            2,
            Duration::from_secs(20),
        )
        .await;
    nodes[0].kill_hard();
    let survivors: Vec<Node> = (3..5).map(|i| cluster.start(&format!("n{i}"), 2)).collect();
    cluster
        .wait_for_count(
            "SELECT COUNT(*) FROM runs WHERE status = 'succeeded'",
            4,
            Duration::from_secs(60),
        )
        .await;
    use sqlx::Row;
    for row in cluster
        .query("SELECT id, status, worker_id, stdout FROM runs")
        .await
    {
        let worker: String = row.get("worker_id");
        assert!(
            !worker.starts_with(&victim_id),
            "run {} was finished by the killed node",
            row.get::<String, _>("id")
        );
        let stdout: Vec<u8> = row.get("stdout");
        assert_eq!(String::from_utf8_lossy(&stdout), "woke up after 3000 ms\n");
    }
    assert_eq!(
        cluster.count("SELECT COUNT(*) FROM runs").await,
        4,
        "no run was duplicated"
    );
    // The operator view shows the dead node as lost, the others alive.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, view) = cluster.operator_view(&survivors[0]).await;
        let victim = view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == victim_id.as_str())
            .cloned()
            .unwrap();
        let alive = view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["alive"] == true)
            .count();
        if victim["alive"] == false && alive == 2 {
            assert_eq!(victim["running"], 0);
            break;
        }
        assert!(Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = run_ids;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_started_later_picks_up_work() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let nodes: Vec<Node> = (0..2).map(|i| cluster.start(&format!("n{i}"), 1)).collect();
    let script = cluster.deploy(&nodes[0], "sleeper").await;
    for _ in 0..10 {
        let (status, body) = cluster
            .call(
                reqwest::Method::POST,
                format!("{}/v1/scripts/{script}/run", nodes[1].url),
                Some(json!({ "payload": { "ms": 1000 } })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = cluster.start("late", 2);
    let late_id = cluster.node_id(&late).await;
    cluster
        .wait_for_count(
            "SELECT COUNT(*) FROM runs WHERE status = 'succeeded'",
            10,
            Duration::from_secs(60),
        )
        .await;
    let by_late = cluster
        .count(&format!(
            "SELECT COUNT(*) FROM runs WHERE worker_id LIKE '{late_id}-%'"
        ))
        .await;
    assert!(by_late >= 1, "the late node ran none of the queued runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_another_system_publishes_runs_the_subscribers() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let nodes: Vec<Node> = (0..2).map(|i| cluster.start(&format!("n{i}"), 1)).collect();
    cluster.deploy(&nodes[0], "event-echo").await;
    let user_id: String = {
        use sqlx::Row;
        cluster.query("SELECT id FROM users").await[0].get("id")
    };
    // A plain NATS client, knowing nothing of roost but the subject scheme:
    // the body is the payload; the message id makes a retry harmless.
    let client = async_nats::connect(cluster.nats_url.as_str())
        .await
        .unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let subject = format!("{}.events.{user_id}.order.paid", cluster.prefix);
    for _ in 0..2 {
        jetstream
            .send_publish(
                subject.clone(),
                async_nats::jetstream::message::PublishMessage::build()
                    .payload(r#"{"order":42,"by":"billing"}"#.into())
                    .message_id("billing-42"),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // And a message for nobody: dropped, not retried forever.
    jetstream
        .send_publish(
            format!("{}.events.usr_nobody.order.paid", cluster.prefix),
            async_nats::jetstream::message::PublishMessage::build().payload("{}".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    cluster
        .wait_for_count(
            "SELECT COUNT(*) FROM runs WHERE trigger_kind = 'event' AND status = 'succeeded'",
            1,
            Duration::from_secs(30),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    use sqlx::Row;
    let rows = cluster
        .query("SELECT trigger_spec, payload, stderr, stdout FROM runs")
        .await;
    assert_eq!(rows.len(), 1, "one run for the message, none for its retry");
    assert_eq!(rows[0].get::<String, _>("trigger_spec"), "order.paid");
    let payload: Value = serde_json::from_str(&rows[0].get::<String, _>("payload")).unwrap();
    assert_eq!(payload, json!({ "order": 42, "by": "billing" }));
    let (status, event) = cluster
        .call(
            reqwest::Method::GET,
            format!("{}/v1/events/billing-42", nodes[1].url),
            None,
        )
        .await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["source"], "nats");
}
