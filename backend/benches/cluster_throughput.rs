//! Event-to-run throughput of a cluster on PostgreSQL and NATS JetStream,
//! with one, two and three `roost serve` processes on this machine: events
//! posted round-robin to the nodes, timed from the first post until every
//! run has finished.
//!
//! `cargo bench -p roost --bench cluster_throughput` needs PostgreSQL and
//! NATS (ROOST_TEST_POSTGRES_URL, ROOST_TEST_NATS_URL; the defaults are the
//! services these machines run). It prints a table and writes
//! `cluster_throughput.json` into `target/roost-bench/` (or
//! `$ROOST_BENCH_DIR`). All nodes share this machine's cores, so more nodes
//! measure coordination cost, not added capacity.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt;
use roost::auth::{hash_token, new_token};
use serde_json::{Value, json};
use sqlx::Connection;

mod support;

const EVENTS: usize = 2_000;
const POSTERS: usize = 32;
const WORKERS_PER_NODE: usize = 2;

struct Node(Child, String);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn start(dir: &std::path::Path, name: &str, database: &str, nats: &str, tag: &str) -> Node {
    support::lift_limits_for_serve(&dir.join(name));
    let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database,
        ])
        .args(["--nats-url", nats, "--nats-stream", &format!("BENCH_{tag}")])
        .args(["--nats-subject-prefix", &format!("b{tag}")])
        .args(["--workers", &WORKERS_PER_NODE.to_string()])
        // One user posts every event: all of a node's workers are its.
        .args(["--max-running-per-user", &WORKERS_PER_NODE.to_string()])
        .env("ROOST_DATA_DIR", dir.join(name))
        .env(
            "ROOST_MASTER_KEY",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        )
        .env("ROOST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = support::serve::listening_url(&mut child, None);
    Node(child, url)
}

async fn bench() {
    let postgres = env_or(
        "ROOST_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    );
    let nats = env_or("ROOST_TEST_NATS_URL", "nats://127.0.0.1:4222");
    let component =
        base64::engine::general_purpose::STANDARD.encode(roost_tests::example("event-echo"));
    let client = reqwest::Client::new();
    let mut rows = Vec::new();
    println!("{EVENTS} events, {POSTERS} concurrent posters, {WORKERS_PER_NODE} workers per node");
    println!(
        "{:>5} {:>14} {:>14} {:>12}",
        "nodes", "accepted/s", "runs/s", "total s"
    );
    for nodes_wanted in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let database = support::fresh_postgres(&postgres).await;
        let tag = hex::encode(rand::random::<[u8; 4]>());
        let store = roost::store::connect(&database).await.unwrap();
        let token = new_token();
        store
            .create_user("bench", &hash_token(&token))
            .await
            .unwrap();
        let nodes: Vec<Node> = (0..nodes_wanted)
            .map(|i| start(dir.path(), &format!("n{i}"), &database, &nats, &tag))
            .collect();
        let deployed: Value = client
            .post(format!("{}/v1/scripts/deploy", nodes[0].1))
            .bearer_auth(&token)
            .json(&json!({ "name": "echo", "component": component }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(deployed["script_id"].is_string(), "{deployed}");

        let start_at = Instant::now();
        futures_util::stream::iter(0..EVENTS)
            .map(|i| {
                let request = client
                    .post(format!(
                        "{}/v1/events/order.created",
                        nodes[i % nodes.len()].1
                    ))
                    .bearer_auth(&token)
                    .json(&json!({ "id": format!("e{i}"), "payload": { "n": i } }));
                async move {
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status().as_u16(), 202);
                }
            })
            .buffer_unordered(POSTERS)
            .collect::<Vec<()>>()
            .await;
        let accepted = start_at.elapsed();
        let mut db = sqlx::PgConnection::connect(&database).await.unwrap();
        loop {
            let done: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'")
                    .fetch_one(&mut db)
                    .await
                    .unwrap();
            if done as usize >= EVENTS {
                break;
            }
            assert!(
                start_at.elapsed() < Duration::from_secs(600),
                "runs did not finish"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let total = start_at.elapsed();
        let row = json!({
            "nodes": nodes_wanted,
            "events": EVENTS,
            "accepted_per_s": EVENTS as f64 / accepted.as_secs_f64(),
            "runs_per_s": EVENTS as f64 / total.as_secs_f64(),
            "total_s": total.as_secs_f64(),
        });
        println!(
            "{:>5} {:>14.0} {:>14.0} {:>12.2}",
            nodes_wanted,
            row["accepted_per_s"].as_f64().unwrap(),
            row["runs_per_s"].as_f64().unwrap(),
            total.as_secs_f64()
        );
        rows.push(row);
        drop(nodes);
    }
    let report = json!({
        "machine": format!("{} cores", std::thread::available_parallelism().map_or(0, |n| n.get())),
        "workers_per_node": WORKERS_PER_NODE,
        "posters": POSTERS,
        "results": rows,
    });
    support::write_report("cluster_throughput", &report);
}
