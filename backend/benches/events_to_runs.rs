//! Event-triggered runs end to end on a real server (SQLite, and PostgreSQL
//! when ROOST_TEST_POSTGRES_URL is set): sustained runs
//! per second, and latency from `POST /v1/events/{type}` to the run's start
//! and end, for `event-echo`, with the default worker pool (twice the cores).
//!
//! The server runs on a tokio runtime of its own, as under `roost serve`,
//! and the bench's clients on another (threads named `bench-client`), so
//! the CPU each side spends can be told apart (see support/cpu.rs).
//!
//! On PostgreSQL the server reaches the database through a counting proxy
//! (support/pg_wire.rs), and the sustained and half-rate phases also say
//! how many round trips and statements, and how many bytes of WAL, each run
//! cost: the cost of coordination, apart from the machine's speed; and how
//! much CPU PostgreSQL's processes on this machine spent per run. The
//! bench's own store handle (its polls for the end of a phase) goes
//! straight to PostgreSQL, uncounted.
//!
//! `cargo bench -p roost --bench events_to_runs` prints a table and writes
//! `events_to_runs.json` into `target/roost-bench/` (or `$ROOST_BENCH_DIR`).
//!
//! `ROOST_BENCH_PACE=<events/s>` sets the paced phase's rate instead of
//! half the sustained rate; `ROOST_BENCH_MAX_RUNNING_PER_USER=<n>` lets the
//! bench's one user take `n` workers instead of half of them;
//! `ROOST_BENCH_PG_WIRE=off` connects roost straight to PostgreSQL (no
//! round trips counted, no proxy in the way); `ROOST_LOG=<filter>` prints
//! the server's logs (for example `roost::store=debug` shows how long each
//! SQLite checkpoint and WAL rewind took).

use std::time::{Duration, Instant};

use roost::app::Application;
use roost::auth::{hash_token, new_token};
use serde_json::{Value, json};

mod support;

use support::cpu::{CpuAccount, ThreadTimes};
use support::pg_wire::PgCounter;

/// The bench's own threads (its HTTP clients); every other thread started
/// with the server is roost's.
const CLIENT_THREADS: &str = "bench-client";

const THROUGHPUT_EVENTS: usize = 5_000;
const LATENCY_EVENTS: usize = 300;
const PACED_EVENTS: usize = 2_000;
const POSTERS: usize = 32;

fn main() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("ROOST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(CLIENT_THREADS)
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
    support::write_report("events_to_runs", &json!(reports));
}

async fn bench_store(store_name: &str, database: Option<String>) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let on_postgres = database.is_some();
    // On PostgreSQL the server goes through the counting proxy, started
    // before the server so that its threads are not counted as roost's.
    // ROOST_BENCH_PG_WIRE=off: straight to PostgreSQL, nothing counted
    // (the proxy's hop and CPU left out of the rate).
    let count_wire = std::env::var("ROOST_BENCH_PG_WIRE").map_or(true, |v| v != "off");
    let (pg, server_database) = match &database {
        Some(url) if !count_wire => (None, Some(url.clone())),
        Some(url) => {
            let (counter, proxied) = PgCounter::start(url);
            (Some(counter), Some(proxied))
        }
        None => (None, None),
    };
    let mut config = support::server_config(dir.path(), server_database);
    config.runner.poll = Duration::from_millis(20);
    // One user posts every event: by default its runs take half the
    // workers, as any one user's do.
    if let Some(share) = std::env::var("ROOST_BENCH_MAX_RUNNING_PER_USER")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.runner.per_user_workers = Some(share);
    }
    let workers = config.runner.workers;
    // The bench's own handle goes straight to the database.
    let store_url = database.unwrap_or_else(|| config.database_url.clone());
    let store = roost::store::connect(&store_url).await.unwrap();
    // The server on a runtime of its own, sized to the cores as under
    // `roost serve`: its tasks never queue behind the bench's clients.
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
    let mut cpu = CpuAccount::new(&before_server, CLIENT_THREADS);
    // PostgreSQL's own CPU per run too, where it runs on this machine
    // (none is counted when no `postgres` process can be seen).
    if on_postgres {
        cpu = cpu.with_database("postgres");
    }
    let token = new_token();
    let user = store
        .create_user("bench", &hash_token(&token))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    support::deploy(&client, &base, &token, "echo", "event-echo", json!({})).await;

    // The events go through the lean client (support/lean_http.rs): the
    // load shares the server's two cores, and reqwest spent 48-80 us of
    // them per event on these machines.
    let poster = std::sync::Arc::new(support::lean_http::LeanPoster::new(
        addr,
        "/v1/events/order.created",
        &token,
    ));
    let post = move |n: usize| {
        let poster = poster.clone();
        async move {
            let reply = poster
                .post(format!(r#"{{"payload":{{"n":{n}}}}}"#).as_bytes())
                .await;
            let accepted: Accepted = serde_json::from_slice(&reply.body)
                .ok()
                .filter(|_| reply.status == 202)
                .unwrap_or_else(|| {
                    panic!("{}: {}", reply.status, String::from_utf8_lossy(&reply.body))
                });
            accepted
                .run_ids
                .into_iter()
                .next()
                .expect("one run per event")
        }
    };
    let (c, b, t) = (client.clone(), base.clone(), token.clone());
    let finished = move |id: String| {
        let (client, base, token) = (c.clone(), b.clone(), t.clone());
        async move {
            loop {
                let run: Value = client
                    .get(format!("{base}/v1/runs/{id}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if run["run"]["finished_at"].is_i64() {
                    assert_eq!(run["run"]["status"], "succeeded", "{run}");
                    return run["run"].clone();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };

    for n in 0..20 {
        finished(post(n).await).await;
    }

    // Sustained rate: POSTERS clients send events as fast as they can; the
    // clock stops when the last run has finished (seen within 5 ms).
    let sustained_pg_mark = match &pg {
        Some(pg) => Some(pg.mark().await),
        None => None,
    };
    let sustained_mark = cpu.mark();
    let started = Instant::now();
    let started_ms = roost::store::now_millis();
    let mut posters = Vec::new();
    for p in 0..POSTERS {
        let post = post.clone();
        posters.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in (p..THROUGHPUT_EVENTS).step_by(POSTERS) {
                ids.push(post(n).await);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for poster in posters {
        ids.extend(poster.await.unwrap());
    }
    let ingest_secs = started.elapsed().as_secs_f64();
    let posted_ms = roost::store::now_millis();
    drained(store.as_ref(), &user.id).await;
    let total_secs = started.elapsed().as_secs_f64();
    let sustained_cpu = cpu.since(&sustained_mark);
    let sustained_pg = match (&pg, &sustained_pg_mark) {
        (Some(pg), Some(mark)) => Some(pg.since(mark).await),
        _ => None,
    };
    // How many runs ended while the events were still arriving: the
    // ingest and the runs share the two cores and the SQLite writer.
    let sustained_runs = store
        .list_runs(
            &user.id,
            &roost::store::RunFilter {
                since: Some(started_ms),
                limit: 2 * THROUGHPUT_EVENTS as i64,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    if sustained_runs.len() != THROUGHPUT_EVENTS {
        // Say which runs are extra (retries of failed runs, most likely)
        // before stopping.
        for run in sustained_runs
            .iter()
            .filter(|run| run.attempt > 1 || run.status != roost::store::RunStatus::Succeeded)
        {
            eprintln!(
                "run {} (attempt {}, first {:?}): {}, error {:?}",
                run.id, run.attempt, run.first_run_id, run.status, run.error
            );
        }
    }
    assert_eq!(sustained_runs.len(), THROUGHPUT_EVENTS);
    let while_posting = sustained_runs
        .iter()
        .filter(|run| run.finished_at.is_some_and(|at| at <= posted_ms))
        .count();
    let after_posting = THROUGHPUT_EVENTS - while_posting;
    let drain_secs = (total_secs - ingest_secs).max(1e-3);
    let rate = THROUGHPUT_EVENTS as f64 / total_secs;
    // Every one of them ran, and ran well (checked once the clock stopped).
    let last = finished(ids.last().cloned().unwrap()).await;
    assert_eq!(last["status"], "succeeded", "{last}");
    let stats = store.run_stats(roost::store::now_millis()).await.unwrap();
    let succeeded = stats
        .by_status
        .iter()
        .find(|(status, _)| status == "succeeded")
        .map_or(0, |(_, n)| *n);
    assert_eq!(
        (succeeded, stats.by_status.len()),
        (THROUGHPUT_EVENTS as i64 + 20, 1),
        "{:?}",
        stats.by_status
    );

    // Latency at a modest rate, one event at a time.
    let mut to_start = Vec::new();
    let mut to_end = Vec::new();
    for n in 0..LATENCY_EVENTS {
        let sent = roost::store::now_millis();
        let run = finished(post(n).await).await;
        to_start.push(run["started_at"].as_i64().unwrap() - sent);
        to_end.push(run["finished_at"].as_i64().unwrap() - sent);
    }
    to_start.sort();
    to_end.sort();

    // Latency under load: events at half the sustained rate, open loop (each
    // leaves on schedule whatever the earlier ones are doing).
    let paced_rate = pace_for(rate);
    tracing::info!(paced_rate, "paced phase starts");
    let paced_pg_mark = match &pg {
        Some(pg) => Some(pg.mark().await),
        None => None,
    };
    let paced_started = roost::store::now_millis();
    let paced_mark = cpu.mark();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / paced_rate));
    let mut sends = Vec::with_capacity(PACED_EVENTS);
    for n in 0..PACED_EVENTS {
        ticker.tick().await;
        let post = post.clone();
        sends.push(tokio::spawn(async move {
            let sent = roost::store::now_millis();
            (sent, post(n).await)
        }));
    }
    let mut sent_runs = Vec::with_capacity(PACED_EVENTS);
    for send in sends {
        sent_runs.push(send.await.unwrap());
    }
    drained(store.as_ref(), &user.id).await;
    let paced_cpu = cpu.since(&paced_mark);
    let paced_pg = match (&pg, &paced_pg_mark) {
        (Some(pg), Some(mark)) => Some(pg.since(mark).await),
        _ => None,
    };
    // Where each event's time went: to its run being queued (the ingest),
    // then waiting for a worker, then the run itself.
    let mut paced_queued = Vec::with_capacity(PACED_EVENTS);
    let mut paced_waited = Vec::with_capacity(PACED_EVENTS);
    let mut paced_start = Vec::with_capacity(PACED_EVENTS);
    let mut paced_end = Vec::with_capacity(PACED_EVENTS);
    let mut paced_end_by_sent = Vec::with_capacity(PACED_EVENTS);
    for (sent, id) in sent_runs {
        let run = finished(id).await;
        let at = |field: &str| run[field].as_i64().unwrap();
        paced_queued.push(at("queued_at") - sent);
        paced_waited.push(at("started_at") - at("queued_at"));
        paced_start.push(at("started_at") - sent);
        paced_end.push(at("finished_at") - sent);
        paced_end_by_sent.push((at("finished_at") - sent, sent - paced_started));
    }
    let slowest = slowest_by_send_time(paced_end_by_sent);
    // Whole milliseconds make p99 coarse; how many events took 5 ms or
    // more (the target's bound) says how far from it a run is.
    let at_target_or_over = paced_end.iter().filter(|&&ms| ms >= 5).count();
    let mut end_histogram = std::collections::BTreeMap::<i64, usize>::new();
    for &ms in &paced_end {
        *end_histogram.entry(ms).or_default() += 1;
    }
    for samples in [
        &mut paced_queued,
        &mut paced_waited,
        &mut paced_start,
        &mut paced_end,
    ] {
        samples.sort();
    }

    println!("events to runs on {store_name}, {workers} workers, event-echo");
    println!(
        "sustained: {THROUGHPUT_EVENTS} events from {POSTERS} clients in {total_secs:.2} s = {rate:.0} runs/s (ingest alone {:.0} events/s)",
        THROUGHPUT_EVENTS as f64 / ingest_secs
    );
    println!(
        "  runs ended while events were being posted: {while_posting} ({:.0} runs/s); after the last event: {after_posting} in {drain_secs:.2} s ({:.0} runs/s)",
        while_posting as f64 / ingest_secs,
        after_posting as f64 / drain_secs
    );
    println!("  {}", sustained_cpu.describe(THROUGHPUT_EVENTS, "run"));
    if let Some(cost) = &sustained_pg {
        println!("  {}", cost.describe(THROUGHPUT_EVENTS, "run"));
    }
    println!("{:<22} {:>8} {:>8}", "latency (ms)", "p50", "p99");
    println!(
        "{:<22} {:>8} {:>8}",
        "event -> run start",
        support::pct(&to_start, 50),
        support::pct(&to_start, 99)
    );
    println!(
        "{:<22} {:>8} {:>8}",
        "event -> run end",
        support::pct(&to_end, 50),
        support::pct(&to_end, 99)
    );
    println!("paced at {paced_rate:.0} events/s ({PACED_EVENTS} events, open loop):");
    println!("  {}", paced_cpu.describe(PACED_EVENTS, "run"));
    if let Some(cost) = &paced_pg {
        println!("  {}", cost.describe(PACED_EVENTS, "run"));
    }
    for (leg, samples) in [
        ("event -> run queued", &paced_queued),
        ("queued -> run start", &paced_waited),
        ("event -> run start", &paced_start),
        ("event -> run end", &paced_end),
    ] {
        println!(
            "{leg:<22} {:>8} {:>8}",
            support::pct(samples, 50),
            support::pct(samples, 99)
        );
    }
    println!(
        "  events 5 ms or more from event to run end: {at_target_or_over} ({:.2}%)",
        at_target_or_over as f64 * 100.0 / PACED_EVENTS as f64
    );
    println!(
        "  the slowest 1% to run end, by when they were sent (ms into the phase: events, their worst ms): {}",
        slowest
            .iter()
            .map(|s| format!("+{}: {} ({} ms)", s.sent_from, s.events, s.worst_ms))
            .collect::<Vec<_>>()
            .join(", ")
    );

    server.shutdown_background();
    drop(pg);
    let p50_p99 = |samples: &[i64]| json!({ "p50": support::pct(samples, 50), "p99": support::pct(samples, 99) });
    json!({
        "benchmark": "events_to_runs",
        "store": store_name,
        "workers": workers,
        "sustained_runs_per_second": rate,
        "ingest_events_per_second": THROUGHPUT_EVENTS as f64 / ingest_secs,
        "runs_ended_while_posting": while_posting,
        "runs_per_second_while_posting": while_posting as f64 / ingest_secs,
        "runs_per_second_after_posting": after_posting as f64 / drain_secs,
        "sustained_cpu": sustained_cpu.json(THROUGHPUT_EVENTS),
        "sustained_postgres": sustained_pg.map(|cost| cost.json(THROUGHPUT_EVENTS)),
        "event_to_start_ms": p50_p99(&to_start),
        "event_to_end_ms": p50_p99(&to_end),
        "at_half_rate": {
            "events_per_second": paced_rate,
            "paced_by": match std::env::var_os("ROOST_BENCH_PACE") {
                Some(_) => "ROOST_BENCH_PACE",
                None => "half the sustained rate",
            },
            "cpu": paced_cpu.json(PACED_EVENTS),
            "postgres": paced_pg.map(|cost| cost.json(PACED_EVENTS)),
            "event_to_queued_ms": p50_p99(&paced_queued),
            "queued_to_start_ms": p50_p99(&paced_waited),
            "event_to_start_ms": p50_p99(&paced_start),
            "event_to_end_ms": p50_p99(&paced_end),
            "events_at_5_ms_or_more": at_target_or_over,
            "event_to_end_ms_histogram": end_histogram,
            "slowest_percent_by_send_time": slowest
                .iter()
                .map(|s| json!({ "sent_from_ms": s.sent_from, "events": s.events, "worst_ms": s.worst_ms }))
                .collect::<Vec<_>>(),
        },
    })
}

/// The paced phase's rate: `ROOST_BENCH_PACE` if set, else half of the
/// sustained `rate` (the latency target's condition).
fn pace_for(rate: f64) -> f64 {
    match std::env::var("ROOST_BENCH_PACE") {
        Ok(pace) => pace
            .parse()
            .ok()
            .filter(|pace: &f64| *pace > 0.0)
            .unwrap_or_else(|| panic!("ROOST_BENCH_PACE={pace:?} is not a positive number")),
        Err(_) => rate / 2.0,
    }
}

/// Slow events sent close together (within 10 ms of the one before).
struct SlowSpell {
    /// When the first was sent, in ms from the phase's start.
    sent_from: i64,
    events: usize,
    worst_ms: i64,
}

/// The slowest 1% of `(latency, sent)` samples grouped by when they were
/// sent: one spell points at a stall (a checkpoint, a client hiccup), many
/// scattered ones at queueing.
fn slowest_by_send_time(mut samples: Vec<(i64, i64)>) -> Vec<SlowSpell> {
    samples.sort_by_key(|&(latency, _)| std::cmp::Reverse(latency));
    samples.truncate(samples.len().div_ceil(100));
    samples.sort_by_key(|&(_, sent)| sent);
    let mut spells: Vec<SlowSpell> = Vec::new();
    let mut last_sent = i64::MIN;
    for (latency, sent) in samples {
        match spells.last_mut() {
            Some(spell) if sent - last_sent <= 10 => {
                spell.events += 1;
                spell.worst_ms = spell.worst_ms.max(latency);
            }
            _ => spells.push(SlowSpell {
                sent_from: sent,
                events: 1,
                worst_ms: latency,
            }),
        }
        last_sent = sent;
    }
    spells
}

/// What `POST /v1/events/{type}` answers, as far as the bench reads it.
#[derive(serde::Deserialize)]
struct Accepted {
    run_ids: Vec<String>,
}

/// Returns once `user_id` has nothing queued or running (seen within
/// 5 ms); polled on the store itself, so the check costs the server no
/// HTTP work. The queue's depth is one row (kept by the store); runs are
/// listed by status only once it is zero, as listing walks the user's
/// latest runs, which took CPU from the server on every poll.
async fn drained(store: &dyn roost::store::Store, user_id: &str) {
    let running = roost::store::RunFilter {
        status: Some(roost::store::RunStatus::Running),
        limit: 1,
        ..Default::default()
    };
    loop {
        if store.queue_depth(user_id).await.unwrap().runs == 0
            && store.list_runs(user_id, &running).await.unwrap().is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
