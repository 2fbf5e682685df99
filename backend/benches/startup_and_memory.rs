//! What roost costs before and around the runs themselves, on this machine:
//!
//! 1. compiling each example component cold, and loading it again from the
//!    on-disk artifact cache;
//! 2. `roost serve` starting on a database holding 1,000 deployed scripts
//!    (half of them with an hourly schedule), until `/health` answers;
//! 3. the resident memory of that idle server, and what each concurrent run
//!    adds (8 runs of `sleeper` held at once).
//!
//! `cargo bench -p roost --bench startup_and_memory` prints a table and
//! writes `startup_and_memory.json` into `target/roost-bench/` (or
//! `$ROOST_BENCH_DIR`). Linux only (memory is read from /proc).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The operator's token the bench's server takes (for `/v1/cluster`).
const OPERATOR: &str = "bench-operator-token";

use roost::auth::{hash_token, new_token};
use roost::store::{NewScriptVersion, TriggerRow};
use roost_sandbox::{Sandbox, SandboxConfig};
use serde_json::json;

mod support;

const SCRIPTS: usize = 1_000;
const CONCURRENT_RUNS: usize = 8;
const EXAMPLES: &[&str] = &[
    "hello",
    "heartbeat",
    "event-echo",
    "welcome-email",
    "gmail-digest",
    "order-alert",
    "notify",
];

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

fn compile_figures() -> serde_json::Value {
    println!(
        "{:<16} {:>10} {:>12} {:>12}",
        "example", "size KiB", "cold ms", "cached ms"
    );
    let mut rows = Vec::new();
    for name in EXAMPLES {
        let bytes = roost_tests::example(name);
        let cache = tempfile::tempdir().unwrap();
        let config = || SandboxConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            ..SandboxConfig::default()
        };
        let cold_sandbox = Sandbox::new(config()).unwrap();
        let start = Instant::now();
        cold_sandbox.load(&bytes).unwrap();
        let cold = start.elapsed();
        // A new engine (as after a restart) finds the artifact on disk.
        let warm_sandbox = Sandbox::new(config()).unwrap();
        let start = Instant::now();
        warm_sandbox.load(&bytes).unwrap();
        let cached = start.elapsed();
        assert_eq!(
            warm_sandbox.cache_hits(),
            1,
            "the second load came from the cache"
        );
        println!(
            "{:<16} {:>10} {:>12.1} {:>12.2}",
            name,
            bytes.len() / 1024,
            cold.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e3
        );
        rows.push(json!({
            "example": name, "bytes": bytes.len(),
            "cold_ms": cold.as_secs_f64() * 1e3, "cached_ms": cached.as_secs_f64() * 1e3,
        }));
    }
    json!(rows)
}

async fn bench() {
    let compile = compile_figures();

    // A database with 1,000 scripts, written through the store as deploys
    // would, half with an hourly schedule.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // 1,000 scripts is past the default per-user cap.
    support::lift_limits_for_serve(&data);
    let database = roost::config::sqlite_url(&data);
    let store = roost::store::connect(&database).await.unwrap();
    let token = new_token();
    let user = store
        .create_user("bench", &hash_token(&token))
        .await
        .unwrap();
    let hello = roost_tests::example("hello");
    let sleeper = roost_tests::example("sleeper");
    for n in 0..SCRIPTS {
        let scheduled = n % 2 == 0;
        let trigger = TriggerRow {
            handler: "hello".into(),
            kind: if scheduled {
                roost::store::TriggerKind::Schedule
            } else {
                roost::store::TriggerKind::Manual
            },
            spec: if scheduled {
                format!("0 {} * * * *", n % 60)
            } else {
                String::new()
            },
            timezone: None,
            flow: None,
        };
        store
            .create_script_version(&NewScriptVersion {
                user_id: user.id.clone(),
                name: format!("script-{n}"),
                component: hello.clone(),
                content_hash: format!("{n:064}"),
                metadata: json!({ "sdk_version": "0.1.0", "handlers": [{ "name": "hello", "trigger": { "kind": "manual" } }], "integrations": [] }),
                triggers: vec![trigger],
                retries: None,
                limits: None,
                caps: Default::default(),
            })
            .await
            .unwrap();
    }
    drop(store);

    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            &CONCURRENT_RUNS.to_string(),
        ])
        .env("ROOST_DATA_DIR", &data)
        .env("ROOST_LOG", "warn")
        .env("ROOST_OPERATOR_TOKEN", OPERATOR)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = support::serve::listening_url(&mut child, None);
    let server = Server(child);
    let client = reqwest::Client::new();
    while client.get(format!("{url}/health")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let startup = start.elapsed();
    // Let the scheduler register the 500 cron jobs and settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_kib = rss_kib(server.0.id());

    // Concurrent runs: at most 4 runs of one script run at once, so the
    // held runs are spread over two copies of sleeper.
    let mut scripts = Vec::new();
    for name in ["sleeper-a", "sleeper-b"] {
        let deployed: serde_json::Value = client
            .post(format!("{url}/v1/scripts/deploy"))
            .bearer_auth(&token)
            .json(&json!({ "name": name, "component": base64_of(&sleeper), "limits": { "timeout_ms": 60000 } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let script = deployed["script_id"]
            .as_str()
            .expect("deployed")
            .to_string();
        // One run first, so compiling is not counted as per-run memory.
        run(&client, &url, &token, &script, 10).await;
        scripts.push(script);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_runs_kib = rss_kib(server.0.id());
    for n in 0..CONCURRENT_RUNS {
        client
            .post(format!("{url}/v1/scripts/{}/run", scripts[n % 2]))
            .bearer_auth(&token)
            .json(&json!({ "payload": { "ms": 4000 } }))
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let running_kib = rss_kib(server.0.id());
    let running: serde_json::Value = client
        .get(format!("{url}/v1/cluster"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let held = running["nodes"][0]["running"].as_i64().unwrap_or(0).max(1);
    let per_run_kib = running_kib.saturating_sub(before_runs_kib) / held as u64;

    println!();
    println!(
        "roost serve with {SCRIPTS} scripts ({} scheduled): ready in {:.0} ms",
        SCRIPTS / 2,
        startup.as_secs_f64() * 1e3
    );
    println!("resident memory idle: {:.1} MiB", idle_kib as f64 / 1024.0);
    println!(
        "resident memory with {held} runs held: {:.1} MiB (+{per_run_kib} KiB per run)",
        running_kib as f64 / 1024.0
    );

    let report = json!({
        "machine": format!("{} cores", std::thread::available_parallelism().map_or(0, |n| n.get())),
        "compile": compile,
        "startup_ms_with_1000_scripts": startup.as_secs_f64() * 1e3,
        "idle_rss_kib": idle_kib,
        "runs_held": held,
        "rss_kib_with_runs": running_kib,
        "per_concurrent_run_kib": per_run_kib,
    });
    support::write_report("startup_and_memory", &report);
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn run(client: &reqwest::Client, url: &str, token: &str, script: &str, ms: u64) {
    let response = client
        .post(format!("{url}/v1/scripts/{script}/run?wait=true"))
        .bearer_auth(token)
        .json(&json!({ "payload": { "ms": ms } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}
