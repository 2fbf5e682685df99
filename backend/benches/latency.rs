//! Round trips a user waits for, on a real server (SQLite, and PostgreSQL
//! when ROOST_TEST_POSTGRES_URL is set), with the worker pool sized to the
//! cores:
//!
//! - a manual run with `?wait=true`: request in, finished run out (`hello`);
//! - cron: from a tick's scheduled time to its run starting (a one-second
//!   schedule, for 20 seconds).
//!
//! `cargo bench -p roost --bench latency` prints a table and writes
//! `latency.json` into `target/roost-bench/` (or `$ROOST_BENCH_DIR`).

use std::time::{Duration, Instant};

use base64::Engine as _;
use roost::app::Application;
use roost::auth::{hash_token, new_token};
use serde_json::{Value, json};

mod support;

const MANUAL_RUNS: usize = 300;
const CRON_SECONDS: u64 = 20;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let mut stores = vec![("sqlite", None)];
    if let Some(url) = support::postgres_url() {
        stores.push(("postgres", Some(support::fresh_postgres(&url).await)));
    } else {
        println!("PostgreSQL skipped: set ROOST_TEST_POSTGRES_URL to measure it too");
    }
    println!(
        "{:<9} {:>16} {:>16} {:>16} {:>16}",
        "store", "manual p50 ms", "manual p99 ms", "cron lag p50 ms", "cron lag p99 ms"
    );
    let mut rows = Vec::new();
    for (name, database) in stores {
        let dir = tempfile::tempdir().unwrap();
        let config = support::server_config(dir.path(), database);
        let store = roost::store::connect(&config.database_url).await.unwrap();
        let app = Application::build(config).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until(std::future::pending()));
        let token = new_token();
        store
            .create_user("bench", &hash_token(&token))
            .await
            .unwrap();
        let client = reqwest::Client::new();
        let deploy = |example: &str| {
            let body = json!({
                "name": example,
                "component": base64::engine::general_purpose::STANDARD.encode(roost_tests::example(example)),
            });
            let request = client
                .post(format!("{base}/v1/scripts/deploy"))
                .bearer_auth(&token)
                .json(&body);
            async move {
                let deployed: Value = request.send().await.unwrap().json().await.unwrap();
                deployed["script_id"]
                    .as_str()
                    .expect("deployed")
                    .to_string()
            }
        };

        let hello = deploy("hello").await;
        let mut manual = Vec::with_capacity(MANUAL_RUNS);
        for n in 0..MANUAL_RUNS + 20 {
            let start = Instant::now();
            let run: Value = client
                .post(format!("{base}/v1/scripts/{hello}/run?wait=true"))
                .bearer_auth(&token)
                .json(&json!({ "payload": { "name": "bench" } }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(run["status"], "succeeded", "{run}");
            if n >= 20 {
                manual.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        manual.sort_by(f64::total_cmp);

        let ticker = deploy("every-second").await;
        client
            .patch(format!("{base}/v1/scripts/{ticker}/schedules/second"))
            .bearer_auth(&token)
            .json(&json!({ "overlap": "allow" }))
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(CRON_SECONDS)).await;
        let runs: Value = client
            .get(format!("{base}/v1/runs?script_id={ticker}&limit=200"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut lag: Vec<f64> = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|run| {
                Some((run["started_at"].as_i64()? - run["payload"]["tick_at"].as_i64()?) as f64)
            })
            .collect();
        lag.sort_by(f64::total_cmp);
        assert!(
            lag.len() >= (CRON_SECONDS as usize) - 3,
            "only {} ticks ran",
            lag.len()
        );
        println!(
            "{:<9} {:>16.2} {:>16.2} {:>16.1} {:>16.1}",
            name,
            support::pct(&manual, 50),
            support::pct(&manual, 99),
            support::pct(&lag, 50),
            support::pct(&lag, 99)
        );
        rows.push(json!({
            "store": name,
            "manual_run_wait_ms": { "p50": support::pct(&manual, 50), "p99": support::pct(&manual, 99), "runs": manual.len() },
            "cron_tick_to_start_ms": { "p50": support::pct(&lag, 50), "p99": support::pct(&lag, 99), "ticks": lag.len() },
        }));
    }
    let report = json!({
        "machine": format!("{} cores", std::thread::available_parallelism().map_or(0, |n| n.get())),
        "results": rows,
    });
    support::write_report("latency", &report);
}
