//! The README quickstart, through the real binary: `roost serve`, `roost user
//! create`, `roost deploy`, `roost integrations`, `roost keys rotate`, and a
//! config file.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::process::{Server, roost, text};

impl Server {
    fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[], &[])
    }
}

/// Creates user `ada` with the CLI; returns her API token.
fn ada(data_dir: &Path) -> String {
    text(&roost(data_dir, &["user", "create", "ada"], &[]).stdout)
        .trim()
        .to_string()
}

#[test]
fn quickstart_through_the_binary() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    assert!(
        data.path().join("master.key").exists(),
        "first start creates the key file"
    );

    let created = roost(data.path(), &["user", "create", "ada"], &[]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let token = text(&created.stdout).trim().to_string();
    assert!(token.starts_with("roost_") && token.len() > 40);
    let again = roost(data.path(), &["user", "create", "ada"], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("already exists"));

    let env = [
        ("ROOST_SERVER", server.url.as_str()),
        ("ROOST_TOKEN", token.as_str()),
    ];
    let hello = roost_tests::example_path("hello").display().to_string();
    let deployed = roost(data.path(), &["deploy", &hello], &env);
    assert!(deployed.status.success(), "{}", text(&deployed.stderr));
    assert!(text(&deployed.stdout).starts_with("deployed `hello`: script scr_"));

    let welcome = roost_tests::example_path("welcome-email")
        .display()
        .to_string();
    let refused = roost(data.path(), &["deploy", &welcome], &env);
    assert_eq!(refused.status.code(), Some(1));
    let stdout = text(&refused.stdout);
    assert!(
        stdout.starts_with(&format!(
            "connect sendgrid: {}/integrations/sendgrid/setup?user=usr_",
            server.url
        )),
        "{stdout}"
    );

    let docs = roost(data.path(), &["integrations", "docs", "gmail"], &env);
    assert!(text(&docs.stdout).contains("`GMAIL_ACCESS_TOKEN`"));
    let list = roost(data.path(), &["integrations", "list"], &env);
    assert!(text(&list.stdout).contains("| `slack` |"));

    let wrong = roost(
        data.path(),
        &["deploy", &hello],
        &[
            ("ROOST_SERVER", &server.url),
            ("ROOST_TOKEN", "roost_wrong"),
        ],
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(text(&wrong.stderr).contains("401"));

    // Store a credential so the rotation below has something to re-encrypt.
    let status = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            &format!("{}/v1/credentials/sendgrid", server.url),
        ])
        .args([
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "content-type: application/json",
        ])
        .args(["-d", r#"{"values":{"api_key":"SG.rotate-me"}}"#])
        .stdout(Stdio::null())
        .status();
    let stored = status.is_ok_and(|s| s.success());

    let exit = server.stop();
    assert!(exit.success(), "SIGTERM is a clean shutdown: {exit:?}");

    let before = std::fs::read_to_string(data.path().join("master.key")).unwrap();
    let rotated = roost(data.path(), &["keys", "rotate"], &[]);
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    if stored {
        assert!(
            text(&rotated.stderr).contains("re-encrypted 1 credential(s)"),
            "{}",
            text(&rotated.stderr)
        );
    }
    let after = std::fs::read_to_string(data.path().join("master.key")).unwrap();
    assert_ne!(before, after);
    assert!(!after.contains("SG.rotate-me"));

    // The server starts again on the rotated key file.
    let server = Server::start(data.path());
    assert!(server.stop().success());
}

/// `roost start` runs a deployed script by name or id; one idempotency key
/// queues one run however often it is sent; `--wait` prints the output.
#[test]
fn start_runs_a_script_once_per_key() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let token = ada(data.path());
    let env = [
        ("ROOST_SERVER", server.url.as_str()),
        ("ROOST_TOKEN", token.as_str()),
    ];
    for example in ["hello", "heartbeat"] {
        let path = roost_tests::example_path(example).display().to_string();
        let deployed = roost(data.path(), &["deploy", &path], &env);
        assert!(deployed.status.success(), "{}", text(&deployed.stderr));
    }

    let run_id = |out: &std::process::Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        stdout
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_end_matches(':')
            .to_string()
    };
    let keyed = ["start", "hello", "--idempotency-key", "nightly-2026-12-06"];
    let first = run_id(&roost(data.path(), &keyed, &env));
    let again = run_id(&roost(data.path(), &keyed, &env));
    assert!(first.starts_with("run_"), "{first}");
    assert_eq!(first, again, "the same key is the same run");
    let other = run_id(&roost(data.path(), &["start", "hello"], &env));
    assert_ne!(
        other, first,
        "without a key, each start is a run of its own"
    );

    let waited = roost(
        data.path(),
        &["start", "hello", "--wait", "--payload", r#"{"name":"cli"}"#],
        &env,
    );
    assert!(waited.status.success(), "{}", text(&waited.stderr));
    let stdout = text(&waited.stdout);
    assert!(stdout.contains("hello from roost"), "{stdout}");
    assert!(stdout.contains(": succeeded"), "{stdout}");

    // Several handlers and none named: one readable line, exit 1.
    let refused = roost(data.path(), &["start", "heartbeat"], &env);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("name one with `handler`: beat, status"),
        "{stderr}"
    );
    let unknown = roost(data.path(), &["start", "nope"], &env);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("no script named `nope`"));

    let runs = roost(data.path(), &["runs", "--limit", "250"], &env);
    assert!(runs.status.success(), "{}", text(&runs.stderr));
    assert_eq!(
        text(&runs.stdout).lines().count(),
        1 + 3,
        "{}",
        text(&runs.stdout)
    );
}

#[test]
fn config_file_settings_apply_and_flags_win() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path()).unwrap();
    std::fs::write(
        data.path().join("roost.toml"),
        "max_body_bytes = 2048\nbase_url = \"https://roost.example.com\"\n",
    )
    .unwrap();
    let server = Server::start(data.path());
    let token = ada(data.path());
    let env = [
        ("ROOST_SERVER", server.url.as_str()),
        ("ROOST_TOKEN", token.as_str()),
    ];

    let hello = roost_tests::example_path("hello").display().to_string();
    let refused = roost(data.path(), &["deploy", &hello], &env);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("413"),
        "{}",
        text(&refused.stderr)
    );
    assert!(server.stop().success());

    let bad = data.path().join("bad.toml");
    std::fs::write(&bad, "listen = 12\n").unwrap();
    let failed = roost(
        data.path(),
        &["serve", "--config", bad.to_str().unwrap()],
        &[],
    );
    assert_eq!(failed.status.code(), Some(2));
    assert!(
        text(&failed.stderr).contains("bad.toml"),
        "{}",
        text(&failed.stderr)
    );
}

async fn api(method: reqwest::Method, url: &str, token: &str) -> serde_json::Value {
    let response = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn run_status(server: &str, token: &str, run: &str) -> String {
    api(
        reqwest::Method::GET,
        &format!("{server}/v1/runs/{run}"),
        token,
    )
    .await["run"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn queued_and_running_runs_survive_a_killed_server() {
    let data = tempfile::tempdir().unwrap();
    let flags = [
        "--workers",
        "1",
        "--run-timeout-ms",
        "1500",
        "--run-stale-secs",
        "1",
    ];
    let server = Server::start_with(data.path(), &flags, &[]);
    let token = ada(data.path());
    let env = [
        ("ROOST_SERVER", server.url.as_str()),
        ("ROOST_TOKEN", token.as_str()),
    ];
    let script_of = |example: &str| {
        let out = roost(
            data.path(),
            &[
                "deploy",
                &roost_tests::example_path(example).display().to_string(),
            ],
            &env,
        );
        text(&out.stdout)
            .split_whitespace()
            .nth(3)
            .unwrap()
            .to_string()
    };
    let (sleeper, hello) = (script_of("sleeper"), script_of("hello"));

    let start = |script: String| {
        let url = format!("{}/v1/scripts/{script}/run", server.url);
        let token = token.clone();
        async move {
            api(reqwest::Method::POST, &url, &token).await["run_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let long = start(sleeper).await;
    for _ in 0..100 {
        if run_status(&server.url, &token, &long).await == "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(run_status(&server.url, &token, &long).await, "running");
    let queued = [start(hello.clone()).await, start(hello).await];
    server.kill_hard();

    // After the restart nothing is lost: the orphaned run is re-queued once
    // its heartbeat is stale, the queued ones stay queued, and all of them end.
    let server = Server::start_with(data.path(), &flags, &[]);
    let mut statuses = Vec::new();
    for _ in 0..300 {
        statuses.clear();
        for run in std::iter::once(&long).chain(&queued) {
            statuses.push(run_status(&server.url, &token, run).await);
        }
        if statuses.iter().all(|s| s != "queued" && s != "running") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        statuses,
        ["timed_out", "succeeded", "succeeded"],
        "after the restart"
    );
    let listed = api(
        reqwest::Method::GET,
        &format!("{}/v1/runs", server.url),
        &token,
    )
    .await;
    assert_eq!(
        listed["runs"].as_array().unwrap().len(),
        3,
        "no run was duplicated"
    );

    let logs = roost(
        data.path(),
        &["logs", &queued[0]],
        &[
            ("ROOST_SERVER", server.url.as_str()),
            ("ROOST_TOKEN", token.as_str()),
        ],
    );
    assert!(
        text(&logs.stdout).contains("hello from roost"),
        "{}",
        text(&logs.stdout)
    );
    let runs = roost(
        data.path(),
        &["runs", "--status", "timed_out"],
        &[
            ("ROOST_SERVER", server.url.as_str()),
            ("ROOST_TOKEN", token.as_str()),
        ],
    );
    assert!(text(&runs.stdout).contains(&long), "{}", text(&runs.stdout));
    assert!(server.stop().success());
}

#[tokio::test]
async fn a_restart_during_a_schedule_does_not_double_a_tick() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let token = ada(data.path());
    let env = [
        ("ROOST_SERVER", server.url.as_str()),
        ("ROOST_TOKEN", token.as_str()),
    ];
    let ticker = roost_tests::example_path("ticker").display().to_string();
    assert!(
        roost(data.path(), &["deploy", &ticker], &env)
            .status
            .success()
    );
    let count = |url: String, token: String| async move {
        let runs = api(
            reqwest::Method::GET,
            &format!("{url}/v1/runs?limit=200"),
            &token,
        )
        .await;
        runs["runs"].as_array().unwrap().len()
    };
    // Wait for a tick, then kill the node in the middle of the schedule.
    for _ in 0..200 {
        if count(server.url.clone(), token.clone()).await >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let before = count(server.url.clone(), token.clone()).await;
    assert!(before >= 1, "the schedule fired before the restart");
    server.kill_hard();
    // A tick's run may have been running when the node died. Overlapping
    // ticks are skipped (the default), so no tick fires until that run is
    // re-queued as stale and ends: 30 s by default, past this test's wait
    // (seen under a loaded CI machine). The restarted node gives up on it
    // after 2 s.
    let server = Server::start_with(data.path(), &["--run-stale-secs", "2"], &[]);
    for _ in 0..300 {
        if count(server.url.clone(), token.clone()).await >= before + 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let runs = api(
        reqwest::Method::GET,
        &format!("{}/v1/runs?limit=200", server.url),
        &token,
    )
    .await;
    let mut ticks: Vec<i64> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["payload"]["tick_at"].as_i64().unwrap())
        .collect();
    ticks.sort();
    let count = ticks.len();
    ticks.dedup();
    assert_eq!(
        ticks.len(),
        count,
        "a tick ran twice across the restart: {ticks:?}"
    );
    assert!(
        count >= before + 2,
        "ticks before and after the restart: {ticks:?}"
    );
    assert!(ticks.iter().all(|t| t % 2000 == 0), "{ticks:?}");
    assert!(server.stop().success());
}

/// A burst of deploys starts no more compiler processes than the server's
/// compile slots (here one): the rest wait their turn, and all succeed.
#[test]
fn deploys_arriving_together_compile_one_at_a_time() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("roost.toml"),
        "max_concurrent_compiles = 1\n",
    )
    .unwrap();
    let server = Server::start(data.path());
    let token = ada(data.path());
    let env = [
        ("ROOST_SERVER", server.url.clone()),
        ("ROOST_TOKEN", token.clone()),
    ];
    let pid = server.child.id().to_string();
    let deploys: Vec<_> = ["notify", "hello", "heartbeat", "event-echo"]
        .iter()
        .map(|example| {
            let (data, env) = (data.path().to_path_buf(), env.clone());
            let path = roost_tests::example_path(example).display().to_string();
            std::thread::spawn(move || {
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                roost(&data, &["deploy", &path], &env)
            })
        })
        .collect();
    let mut most = 0;
    while deploys.iter().any(|d| !d.is_finished()) {
        let children = Command::new("pgrep").args(["-P", &pid]).output().unwrap();
        most = most.max(text(&children.stdout).lines().count());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for deploy in deploys {
        let out = deploy.join().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert_eq!(most, 1, "at most one compiler at a time, and one was seen");
}

#[test]
fn a_deploy_over_the_compile_limit_is_killed_and_stores_nothing() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("roost.toml"), "compile_timeout_ms = 1\n").unwrap();
    let server = Server::start(data.path());
    let created = roost(data.path(), &["user", "create", "ada"], &[]);
    let token = text(&created.stdout).trim().to_string();
    let env = [
        ("ROOST_SERVER", server.url.as_str()),
        ("ROOST_TOKEN", token.as_str()),
    ];
    let digest = roost_tests::example_path("notify").display().to_string();
    let refused = roost(data.path(), &["deploy", &digest], &env);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("422") && stderr.contains("compiling the component took longer than 1ms"),
        "{stderr}"
    );
    // The compiler child is gone (killed, not left running), and nothing
    // was stored or cached.
    let children = Command::new("pgrep")
        .args(["-P", &server.child.id().to_string()])
        .output()
        .unwrap();
    assert!(
        text(&children.stdout).trim().is_empty(),
        "a compiler is still running"
    );
    let listed = roost(data.path(), &["runs"], &env);
    assert!(listed.status.success());
    let cache = data.path().join("cache/compiled");
    let cached = std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
    assert_eq!(cached, 0, "no artifact was written");
    drop(server);

    // With the default limit the same deploy goes through the compiler
    // process and leaves its artifact in the cache.
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let created = roost(data.path(), &["user", "create", "ada"], &[]);
    let token = text(&created.stdout).trim().to_string();
    let env = [
        ("ROOST_SERVER", server.url.as_str()),
        ("ROOST_TOKEN", token.as_str()),
    ];
    let deployed = roost(data.path(), &["deploy", &digest], &env);
    assert!(deployed.status.success(), "{}", text(&deployed.stderr));
    let cached = std::fs::read_dir(data.path().join("cache/compiled"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(cached > 0, "the compiler filled the server's cache");
}

/// `roost state`: what a script remembers, listed, read, set and removed
/// through the server, each refusal one readable line.
#[test]
fn state_through_the_binary() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let token = ada(data.path());
    let env = [
        ("ROOST_SERVER", server.url.as_str()),
        ("ROOST_TOKEN", token.as_str()),
    ];
    let probe = roost_tests::example_path("state-probe")
        .display()
        .to_string();
    let deployed = roost(data.path(), &["deploy", &probe], &env);
    assert!(deployed.status.success(), "{}", text(&deployed.stderr));
    let steps = r#"{"steps":[{"set":["cursor",{"after":41}]},{"set":["seen/a b",true]}]}"#;
    let ran = roost(
        data.path(),
        &["start", "state-probe", "--wait", "--payload", steps],
        &env,
    );
    assert!(ran.status.success(), "{}", text(&ran.stderr));

    let state = |args: &[&str]| {
        let mut all = vec!["state"];
        all.extend_from_slice(args);
        roost(data.path(), &all, &env)
    };
    let listed = state(&["list", "state-probe"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert_eq!(
        text(&listed.stdout),
        "cursor  {\"after\":41}\nseen/a b  true\n"
    );
    assert!(
        text(&listed.stderr).contains("2 key(s)"),
        "{}",
        text(&listed.stderr)
    );
    let got = state(&["get", "state-probe", "cursor"]);
    assert_eq!(text(&got.stdout), "{\n  \"after\": 41\n}\n");
    let set = state(&["set", "state-probe", "cursor", r#"{"after":42}"#]);
    assert!(set.status.success(), "{}", text(&set.stderr));
    let got = state(&["get", "state-probe", "cursor"]);
    assert!(text(&got.stdout).contains("42"));
    let deleted = state(&["delete", "state-probe", "seen/a b"]);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    let listed = state(&["list", "state-probe", "--prefix", "seen/"]);
    assert_eq!(text(&listed.stdout), "");

    // Refusals: one line each, exit 1 (the server's) or 2 (the CLI's own).
    let missing = state(&["get", "state-probe", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr).trim(),
        "roost: 404 Not Found: state key `nope` not found (not_found)"
    );
    let not_json = state(&["set", "state-probe", "k", "not json"]);
    assert_eq!(not_json.status.code(), Some(2));
    assert!(text(&not_json.stderr).starts_with("roost: the value is not JSON"));
    let unknown = state(&["list", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("no script named `nope`"));
    let cleared = state(&["clear", "state-probe"]);
    assert_eq!(text(&cleared.stdout).trim(), "deleted 1 key(s)");
    assert!(server.stop().success());
}
