//! What script state costs a run: runs/s of the `state-probe` guest when
//! each run reads 10 counters (one `get_many`) and writes each, against the
//! same guest and step touching none, on SQLite and (when
//! ROOST_TEST_POSTGRES_URL is set) PostgreSQL.
//! Every run is a manual run of one script, so the state writes of all of
//! them take turns on that script's state (the worst case for the
//! per-script turn the commit takes).
//!
//! The two kinds alternate, turn after turn, on one server, so both see the
//! same machine; the table gives each turn (with the CPU roost's threads
//! spent per run), the medians, and the median ratio of each turn with
//! state to the turn before it (the machine's speed drifts less within a
//! pair than across the whole bench).
//!
//! `cargo bench -p roost --bench state_runs` prints a table and writes
//! `state_runs.json` into `target/roost-bench/` (or `$ROOST_BENCH_DIR`).

use std::time::{Duration, Instant};

use roost::app::Application;
use roost::auth::{hash_token, new_token};
use serde_json::{Value, json};

mod support;

use support::cpu::{CpuAccount, PhaseCpu, ThreadTimes};

/// One measured turn: its kind, its rate and the CPU it took.
struct Turn {
    with_state: bool,
    rate: f64,
    cpu: PhaseCpu,
}

const RUNS_PER_TURN: usize = 2_000;
const TURNS: usize = 10;
const POSTERS: usize = 16;
const KEYS: usize = 10;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-client")
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let mut reports = vec![bench_store("SQLite", None).await];
    match support::postgres_url() {
        Some(base) => {
            let url = support::fresh_postgres(&base).await;
            println!();
            reports.push(bench_store("PostgreSQL", Some(url)).await);
        }
        None => println!("PostgreSQL skipped: set ROOST_TEST_POSTGRES_URL to measure it too"),
    }
    support::write_report("state_runs", &json!(reports));
}

/// The probe's steps: one that reads `KEYS` counters in one request and
/// writes each, or (`with_state` false) the same step touching none.
/// `ROOST_BENCH_STATE_STEPS=get` reads them one request each instead;
/// `read` or `write` only reads or only writes them.
fn steps(with_state: bool, n: usize) -> Value {
    let keys = if with_state { KEYS } else { 0 };
    if std::env::var("ROOST_BENCH_STATE_STEPS").as_deref() == Ok("get") && with_state {
        let mut steps: Vec<Value> = (0..KEYS)
            .map(|k| json!({ "get": format!("counter-{k}") }))
            .collect();
        steps.extend((0..KEYS).map(|k| json!({ "set": [format!("counter-{k}"), n] })));
        return Value::Array(steps);
    }
    match std::env::var("ROOST_BENCH_STATE_STEPS").as_deref() {
        Ok(only @ ("read" | "write")) => json!([{ "counters": [keys, only] }]),
        _ => json!([{ "counters": keys }]),
    }
}

async fn bench_store(store_name: &str, database: Option<String>) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::server_config(dir.path(), database);
    config.runner.poll = Duration::from_millis(20);
    config.abuse.max_queued_runs_per_user = i64::MAX;
    let workers = config.runner.workers;
    let store = roost::store::connect(&config.database_url).await.unwrap();
    let before_server = ThreadTimes::now();
    let server = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("roost-server")
        .build()
        .unwrap();
    let (port_tx, port) = tokio::sync::oneshot::channel();
    server.spawn(async move {
        let app = Application::build(config).await.unwrap();
        port_tx.send(app.port()).unwrap();
        app.run_until(std::future::pending()).await
    });
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port.await.unwrap()));
    let base = format!("http://{addr}");
    let token = new_token();
    let user = store
        .create_user("bench", &hash_token(&token))
        .await
        .unwrap();
    let script = support::deploy(
        &reqwest::Client::new(),
        &base,
        &token,
        "probe",
        "state-probe",
        json!({ "retries": { "max": 0 } }),
    )
    .await;
    let poster = std::sync::Arc::new(support::lean_http::LeanPoster::new(
        addr,
        &format!("/v1/scripts/{script}/run"),
        &token,
    ));

    let cpu = CpuAccount::new(&before_server, "bench-client");
    let mut done = 0_i64;
    let mut turns: Vec<Turn> = Vec::new();
    // A warm-up turn of each kind, then the measured turns, alternating.
    // `ROOST_BENCH_STATE_ONLY=with|without` runs turns of one kind, for a
    // profiler; both kinds give the comparison.
    let kinds: &[bool] = match std::env::var("ROOST_BENCH_STATE_ONLY").as_deref() {
        Ok("with") => &[true],
        Ok("without") => &[false],
        _ => &[false, true],
    };
    for (turn, with_state) in kinds
        .iter()
        .copied()
        .chain((0..TURNS).flat_map(|_| kinds.iter().copied()))
        .enumerate()
    {
        let started = Instant::now();
        let mark = cpu.mark();
        let mut posters = Vec::new();
        for p in 0..POSTERS {
            let poster = poster.clone();
            posters.push(tokio::spawn(async move {
                for n in (p..RUNS_PER_TURN).step_by(POSTERS) {
                    let body = json!({ "payload": { "steps": steps(with_state, n) } });
                    let reply = poster.post(body.to_string().as_bytes()).await;
                    assert_eq!(
                        reply.status,
                        202,
                        "{}",
                        String::from_utf8_lossy(&reply.body)
                    );
                }
            }));
        }
        for poster in posters {
            poster.await.unwrap();
        }
        done += RUNS_PER_TURN as i64;
        succeeded(store.as_ref(), &user.id, done).await;
        let rate = RUNS_PER_TURN as f64 / started.elapsed().as_secs_f64();
        let spent = cpu.since(&mark);
        if turn >= kinds.len() {
            turns.push(Turn {
                with_state,
                rate,
                cpu: spent,
            });
        }
    }
    server.shutdown_background();

    let median = |with_state: bool, of: &dyn Fn(&Turn) -> f64| {
        let mut values: Vec<f64> = turns
            .iter()
            .filter(|t| t.with_state == with_state)
            .map(of)
            .collect();
        values.sort_by(f64::total_cmp);
        // NaN for a kind this run left out.
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (without, with) = (median(false, &|t| t.rate), median(true, &|t| t.rate));
    let cpu_per_run = |t: &Turn| t.cpu.server_secs() * 1e6 / RUNS_PER_TURN as f64;
    let (cpu_without, cpu_with) = (median(false, &cpu_per_run), median(true, &cpu_per_run));
    // Each turn with state against the turn just before it: the machine's
    // speed drifts between turns, much less within two.
    let mut pair_ratios: Vec<f64> = turns
        .windows(2)
        .filter(|pair| !pair[0].with_state && pair[1].with_state)
        .map(|pair| pair[1].rate / pair[0].rate)
        .collect();
    pair_ratios.sort_by(f64::total_cmp);
    let pair_ratio = pair_ratios
        .get(pair_ratios.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    println!(
        "state on {store_name}, {workers} workers, {RUNS_PER_TURN} manual runs of one script per turn from {POSTERS} clients"
    );
    for turn in &turns {
        let kind = if turn.with_state {
            "10 reads + 10 writes"
        } else {
            "no state"
        };
        println!("  {kind:<22} {:>8.0} runs/s", turn.rate);
        println!("    {}", turn.cpu.describe(RUNS_PER_TURN, "run"));
    }
    println!(
        "median: no state {without:.0} runs/s, with state {with:.0} runs/s ({:.2}x); \
         roost CPU per run {cpu_without:.0} µs without, {cpu_with:.0} µs with ({:.2}x); \
         median of the {} turn pairs' ratios {pair_ratio:.2}x",
        with / without,
        cpu_without / cpu_with,
        pair_ratios.len()
    );
    json!({
        "store": store_name,
        "workers": workers,
        "runs_per_turn": RUNS_PER_TURN,
        "turns": turns.iter().map(|t| json!({
            "state": t.with_state,
            "runs_per_sec": t.rate,
            "cpu": t.cpu.json(RUNS_PER_TURN),
        })).collect::<Vec<_>>(),
        "median_roost_cpu_us_per_run_without_state": cpu_without,
        "median_roost_cpu_us_per_run_with_state": cpu_with,
        "median_runs_per_sec_without_state": without,
        "median_runs_per_sec_with_state": with,
        "ratio": with / without,
        "median_pair_ratio": pair_ratio,
    })
}

/// Waits until the user has no run queued or running, then checks that
/// `total` runs have succeeded and none ended otherwise. (The wait reads
/// two small counts, not the runs: a poll must not cost the server much.)
async fn succeeded(store: &dyn roost::store::Store, user_id: &str, total: i64) {
    let running = roost::store::RunFilter {
        status: Some(roost::store::RunStatus::Running),
        limit: 1,
        ..Default::default()
    };
    loop {
        if store.queue_depth(user_id).await.unwrap().runs == 0
            && store.list_runs(user_id, &running).await.unwrap().is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = store.run_stats(roost::store::now_millis()).await.unwrap();
    assert_eq!(
        stats.by_status,
        [("succeeded".to_string(), total)],
        "every run succeeded"
    );
}
