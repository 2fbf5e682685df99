//! Round trips a user waits for, on a real server (SQLite, and PostgreSQL
//! when ROOST_TEST_POSTGRES_URL is set), with the worker pool sized to the
//! cores:
//!
//! - a manual run with `?wait=true`: request in, finished run out (`hello`);
//! - cron: from a tick's scheduled time to its run starting (a one-second
//!   schedule, for `ROOST_BENCH_CRON_SECONDS`, 105 by default: at least
//!   100 ticks), with p50, p99 and the worst tick.
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
/// How long the cron phase lasts by default: at least 100 one-second ticks.
const CRON_SECONDS: u64 = 105;
/// Ticks a phase of `seconds` must run: all but five (the first tick may
/// come up to a second after the schedule is set, and the last ones may
/// not have started when the runs are listed).
fn ticks_wanted(seconds: u64) -> usize {
    seconds.saturating_sub(5) as usize
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let cron_seconds: u64 = match std::env::var("ROOST_BENCH_CRON_SECONDS") {
        Ok(secs) => secs
            .parse()
            .ok()
            .filter(|&secs| secs > 5)
            .unwrap_or_else(|| {
                panic!("ROOST_BENCH_CRON_SECONDS={secs:?} is not a number of seconds over 5")
            }),
        Err(_) => CRON_SECONDS,
    };
    let mut stores = vec![("sqlite", None)];
    if let Some(url) = support::postgres_url() {
        stores.push(("postgres", Some(support::fresh_postgres(&url).await)));
    } else {
        println!("PostgreSQL skipped: set ROOST_TEST_POSTGRES_URL to measure it too");
    }
    println!(
        "{:<9} {:>14} {:>14} {:>6} {:>16} {:>16} {:>16}",
        "store",
        "manual p50 ms",
        "manual p99 ms",
        "ticks",
        "cron lag p50 ms",
        "cron lag p99 ms",
        "cron lag max ms"
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
        tokio::time::sleep(Duration::from_secs(cron_seconds)).await;
        // The runs list gives at most 200 a page: follow its cursor.
        let mut lag: Vec<f64> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/runs?script_id={ticker}&limit=200");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = support::get_json(&client, &base, &token, &path).await;
            lag.extend(page["runs"].as_array().unwrap().iter().filter_map(|run| {
                Some((run["started_at"].as_i64()? - run["payload"]["tick_at"].as_i64()?) as f64)
            }));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        lag.sort_by(f64::total_cmp);
        assert!(
            lag.len() >= ticks_wanted(cron_seconds),
            "only {} ticks ran in {cron_seconds} s",
            lag.len()
        );
        let lag_max = *lag.last().unwrap();
        println!(
            "{:<9} {:>14.2} {:>14.2} {:>6} {:>16.1} {:>16.1} {:>16.1}",
            name,
            support::pct(&manual, 50),
            support::pct(&manual, 99),
            lag.len(),
            support::pct(&lag, 50),
            support::pct(&lag, 99),
            lag_max
        );
        rows.push(json!({
            "store": name,
            "manual_run_wait_ms": { "p50": support::pct(&manual, 50), "p99": support::pct(&manual, 99), "runs": manual.len() },
            "cron_tick_to_start_ms": { "p50": support::pct(&lag, 50), "p99": support::pct(&lag, 99), "max": lag_max, "ticks": lag.len() },
            "cron_seconds": cron_seconds,
        }));
    }
    let report = json!({
        "machine": format!("{} cores", std::thread::available_parallelism().map_or(0, |n| n.get())),
        "results": rows,
    });
    support::write_report("latency", &report);
}
