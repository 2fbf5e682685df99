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
//!
//! To read that cost apart from the machine's speed, the nodes reach
//! PostgreSQL through one counting proxy (support/pg_wire.rs), and each row
//! also gives, over the measured phase (first post to last run finished),
//! PostgreSQL round trips and bytes of WAL per run, and roost's CPU per run
//! (user and system time of the `roost serve` processes, from
//! `/proc/<pid>/stat`): all nodes' summed, and the mean node's; and
//! PostgreSQL's CPU per run (its processes on this machine). The bench's
//! own connections (its poll for the finished runs) go straight to
//! PostgreSQL, uncounted.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt;
use roost::auth::{hash_token, new_token};
use serde_json::{Value, json};
use sqlx::Connection;

mod support;

use support::cpu::{ProcessesCpu, process_cpu_secs};
use support::pg_wire::PgCounter;

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
    // ROOST_BENCH_ROOST_BIN: another build's binary, to compare two builds.
    let binary = std::env::var("ROOST_BENCH_ROOST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_roost").to_string());
    let mut child = Command::new(binary)
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

/// Each node's CPU seconds so far (`None` where `/proc` cannot say).
fn nodes_cpu(nodes: &[Node]) -> Vec<Option<f64>> {
    nodes
        .iter()
        .map(|node| process_cpu_secs(node.0.id()))
        .collect()
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
        "{:>5} {:>11} {:>8} {:>8} {:>13} {:>11} {:>12} {:>16} {:>15}",
        "nodes",
        "accepted/s",
        "runs/s",
        "total s",
        "PG trips/run",
        "WAL B/run",
        "CPU µs/run",
        "CPU µs/run/node",
        "PG CPU µs/run"
    );
    for nodes_wanted in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let database = support::fresh_postgres(&postgres).await;
        let tag = hex::encode(rand::random::<[u8; 4]>());
        let store = roost::store::connect(&database).await.unwrap();
        // One proxy for all the nodes; dropped after them (declared first).
        let (pg, proxied) = PgCounter::start(&database);
        let token = new_token();
        store
            .create_user("bench", &hash_token(&token))
            .await
            .unwrap();
        let nodes: Vec<Node> = (0..nodes_wanted)
            .map(|i| start(dir.path(), &format!("n{i}"), &proxied, &nats, &tag))
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

        let pg_mark = pg.mark().await;
        let cpu_before = nodes_cpu(&nodes);
        let database_before = ProcessesCpu::now("postgres");
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
        let cpu_after = nodes_cpu(&nodes);
        let database_us_per_run = ProcessesCpu::now("postgres")
            .secs_since(&database_before)
            .map(|secs| secs * 1e6 / EVENTS as f64);
        let cost = pg.since(&pg_mark).await;
        // Each node's CPU µs in the phase per run (of all the runs).
        let node_us_per_run: Vec<Option<f64>> = cpu_before
            .iter()
            .zip(&cpu_after)
            .map(|(before, after)| Some((after.as_ref()? - before.as_ref()?) * 1e6 / EVENTS as f64))
            .collect();
        let cpu_us_per_run: Option<f64> = node_us_per_run.iter().copied().sum();
        let cpu_us_per_run_per_node = cpu_us_per_run.map(|us| us / nodes.len() as f64);
        let row = json!({
            "nodes": nodes_wanted,
            "events": EVENTS,
            "accepted_per_s": EVENTS as f64 / accepted.as_secs_f64(),
            "runs_per_s": EVENTS as f64 / total.as_secs_f64(),
            "total_s": total.as_secs_f64(),
            "postgres": cost.json(EVENTS),
            "roost_cpu_us_per_run": cpu_us_per_run,
            "roost_cpu_us_per_run_per_node": cpu_us_per_run_per_node,
            "roost_cpu_us_per_run_by_node": node_us_per_run,
            "postgres_cpu_us_per_run": database_us_per_run,
        });
        let or_dash = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        println!(
            "{:>5} {:>11.0} {:>8.0} {:>8.2} {:>13.2} {:>11.0} {:>12} {:>16} {:>15}",
            nodes_wanted,
            row["accepted_per_s"].as_f64().unwrap(),
            row["runs_per_s"].as_f64().unwrap(),
            total.as_secs_f64(),
            cost.round_trips as f64 / EVENTS as f64,
            cost.wal_bytes as f64 / EVENTS as f64,
            or_dash(cpu_us_per_run),
            or_dash(cpu_us_per_run_per_node),
            or_dash(database_us_per_run)
        );
        rows.push(row);
        drop(nodes);
        drop(pg);
    }
    let report = json!({
        "machine": format!("{} cores", std::thread::available_parallelism().map_or(0, |n| n.get())),
        "workers_per_node": WORKERS_PER_NODE,
        "posters": POSTERS,
        "results": rows,
    });
    support::write_report("cluster_throughput", &report);
}
