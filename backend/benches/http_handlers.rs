//! HTTP handlers side by side with `wasmtime serve`: the same answer
//! (`hello, world`) from `hello-http` behind roost (each request a run,
//! recorded durably) and from `hello-proxy` under `wasmtime serve` (a fresh
//! instance per request, nothing recorded), each loaded with
//! `wrk -t2 -c16 -d30s --latency` on this machine, one after the other.
//!
//! Needs `wrk` on the PATH; the `wasmtime serve` side needs wasmtime-cli
//! 48.0.8 (`cargo install wasmtime-cli --version 48.0.8 --locked --root
//! ~/.cache/wasmtime-cli`; `$ROOST_BENCH_WASMTIME` names another binary)
//! and is skipped, saying so, without it. `ROOST_BENCH_SECONDS` shortens
//! the runs. After roost's run the bench counts the runs stored, so every
//! answered request is shown to be a recorded run.
//!
//! `cargo bench -p roost --bench http_handlers` prints a table and writes
//! `http_handlers.json` into `target/roost-bench/` (or `$ROOST_BENCH_DIR`).

// The allocator `roost serve` runs with (backend/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use roost::app::Application;
use roost::auth::{hash_token, new_token};
use serde_json::{Value, json};

mod support;

/// What wrk measured.
#[derive(Debug, Clone, Copy)]
struct Load {
    requests: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("skipped: `wrk` is not installed (apt-get install wrk)");
        return;
    }
    let seconds: u64 = std::env::var("ROOST_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (roost, recorded) = runtime.block_on(roost_side(seconds));
    let wasmtime = wasmtime_side(seconds);

    println!("\n| path | requests | requests/s | p50 | p99 | non-2xx |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, load: &Load| {
        println!(
            "| {name} | {} | {:.0} | {:.2} ms | {:.2} ms | {} |",
            load.requests, load.per_sec, load.p50_ms, load.p99_ms, load.non_2xx
        );
    };
    row("roost, GET /h/{token}/hello (a recorded run each)", &roost);
    println!(
        "runs recorded: {recorded} (wrk counted {} answers)",
        roost.requests
    );
    let mut report = json!({
        "seconds": seconds,
        "roost": load_json(&roost),
        "roost_runs_recorded": recorded,
    });
    match wasmtime {
        Some(load) => {
            row("wasmtime serve, hello-proxy (nothing recorded)", &load);
            let ratio = roost.per_sec / load.per_sec;
            println!("roost / wasmtime serve: {ratio:.2}x requests/s");
            report["wasmtime_serve"] = load_json(&load);
            report["ratio"] = json!(ratio);
        }
        None => println!(
            "wasmtime serve: skipped (install wasmtime-cli 48.0.8 into ~/.cache/wasmtime-cli, \
             or set ROOST_BENCH_WASMTIME)"
        ),
    }
    support::write_report("http_handlers", &report);
}

fn load_json(load: &Load) -> Value {
    json!({
        "requests": load.requests, "per_sec": load.per_sec,
        "p50_ms": load.p50_ms, "p99_ms": load.p99_ms, "non_2xx": load.non_2xx,
    })
}

/// roost in this process (its default worker pool, abuse limits lifted),
/// `hello-http` deployed, wrk on its URL; then the runs it stored.
async fn roost_side(seconds: u64) -> (Load, i64) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::server_config(dir.path(), None);
    config.abuse.http_requests_per_minute = u32::MAX;
    // For A/B runs of the worker pool: `ROOST_BENCH_WORKERS`, and
    // `ROOST_BENCH_PER_USER_WORKERS` (default: half of them).
    let knob = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(workers) = knob("ROOST_BENCH_WORKERS") {
        config.runner.workers = workers;
    }
    config.runner.per_user_workers = knob("ROOST_BENCH_PER_USER_WORKERS");
    config.abuse.max_queued_runs_per_user = i64::MAX;
    let database = config.database_url.clone();
    let (port_tx, port) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let app = Application::build(config).await.unwrap();
        port_tx.send(app.port()).unwrap();
        app.run_until(std::future::pending()).await
    });
    let base = format!("http://127.0.0.1:{}", port.await.unwrap());
    let store = roost::store::connect(&database).await.unwrap();
    let token = new_token();
    store
        .create_user("bench", &hash_token(&token))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let script = support::deploy(
        &client,
        &base,
        &token,
        "hello-http",
        "hello-http",
        json!({}),
    )
    .await;
    let handlers = support::get_json(
        &client,
        &base,
        &token,
        &format!("/v1/scripts/{script}/http"),
    )
    .await;
    let url = handlers["handlers"][0]["url"].as_str().unwrap().to_string();
    let answer = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(answer, "hello, world\n");
    let load = tokio::task::spawn_blocking(move || wrk(&url, seconds))
        .await
        .unwrap();
    // Runs still finishing when wrk stopped are given a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runs WHERE trigger_kind = 'http' AND status = 'succeeded'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    (load, recorded)
}

/// `wasmtime serve` of `hello-proxy` on a free port, wrk on it.
fn wasmtime_side(seconds: u64) -> Option<Load> {
    let binary = std::env::var_os("ROOST_BENCH_WASMTIME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/wasmtime-cli/bin/wasmtime"))
        })
        .filter(|path| path.exists())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(&binary)
        .args(["serve", "-Scli", "--addr", &format!("127.0.0.1:{port}")])
        .arg(roost_tests::example_path("hello-proxy"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wasmtime starts");
    let url = format!("http://127.0.0.1:{port}/hello");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "wasmtime serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let load = wrk(&url, seconds);
    let _ = child.kill();
    let _ = child.wait();
    Some(load)
}

/// `wrk -t2 -c16 -d<seconds>s --latency url`, read.
fn wrk(url: &str, seconds: u64) -> Load {
    let out = Command::new("wrk")
        .args(["-t2", "-c16", &format!("-d{seconds}s"), "--latency", url])
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::trim)
    };
    let millis = |value: &str| -> f64 {
        let (number, unit) = value
            .find(|c: char| c.is_ascii_alphabetic())
            .map(|i| value.split_at(i))
            .unwrap_or((value, "ms"));
        let number: f64 = number.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => number / 1000.0,
            "s" => number * 1000.0,
            _ => number,
        }
    };
    Load {
        requests: text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        per_sec: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50_ms: field("50%").map_or(f64::NAN, millis),
        p99_ms: field("99%").map_or(f64::NAN, millis),
        non_2xx: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}
