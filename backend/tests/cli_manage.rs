//! The remote CLI a user lives in, against a real server: `roost scripts
//! list|show|versions|rollback|delete`, `roost events send`, `roost
//! credentials list|delete`, `roost connect` and `roost run --remote`.
//! Tables by default, `--json` on request, a refusal as one line with its
//! code, the run's status as the exit code.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::json;
use support::process::{Server, roost, text};

struct Cli<'a> {
    dir: &'a Path,
    env: [(&'a str, &'a str); 2],
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> Output {
        roost(self.dir, args, &self.env)
    }

    /// Runs `args` with `input` on its standard input.
    fn with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write as _;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_roost"));
        command
            .args(args)
            .env("ROOST_DATA_DIR", self.dir)
            .envs(self.env)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs `args`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// Runs `args`, which must be refused by the server: its one line.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stdout)
        );
        let line = text(&out.stderr);
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(!line.contains('{'), "no raw JSON: {line}");
        line
    }
}

fn example(name: &str) -> String {
    roost_tests::example_path(name).display().to_string()
}

#[test]
fn a_user_manages_scripts_events_and_connections_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[], &[]);
    let token = text(&roost(data.path(), &["user", "create", "ada"], &[]).stdout)
        .trim()
        .to_string();
    let cli = Cli {
        dir: data.path(),
        env: [("ROOST_SERVER", &server.url), ("ROOST_TOKEN", &token)],
    };

    cli.ok(&["deploy", &example("event-echo"), "--name", "echo"]);
    cli.ok(&["deploy", &example("state-probe"), "--name", "probe"]);
    cli.ok(&["deploy", &example("state-probe"), "--name", "probe"]);
    let listed = cli.ok(&["scripts", "list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("VERSION"),
        "{listed}"
    );
    assert_eq!(lines.len(), 3, "{listed}");
    let probe_line = lines.iter().find(|l| l.contains(" probe ")).unwrap();
    assert!(
        probe_line.split_whitespace().nth(2) == Some("2"),
        "{probe_line}"
    );

    let shown = cli.ok(&["scripts", "show", "echo"]);
    assert!(
        shown.contains("on_created") && shown.contains("order.created"),
        "{shown}"
    );
    let versions = cli.ok(&["scripts", "versions", "probe", "--json"]);
    let versions: serde_json::Value = serde_json::from_str(&versions).unwrap();
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    let rolled = cli.run(&["scripts", "rollback", "probe", "1"]);
    assert!(
        text(&rolled.stderr).contains("runs version 1 now"),
        "{}",
        text(&rolled.stderr)
    );

    // An event starts the handler that takes it.
    let sent = cli.ok(&[
        "events",
        "send",
        "order.created",
        "--payload",
        r#"{"order": 7}"#,
        "--id",
        "evt-1",
    ]);
    assert!(sent.starts_with("event evt-1: runs run_"), "{sent}");
    let again = cli.ok(&[
        "events",
        "send",
        "order.created",
        "--payload",
        r#"{"order": 7}"#,
        "--id",
        "evt-1",
    ]);
    assert!(again.contains("seen before"), "{again}");
    let nobody = cli.ok(&["events", "send", "order.lost"]);
    assert!(nobody.contains("no handler takes it"), "{nobody}");
    let bad = cli.run(&["events", "send", "order.created", "--payload", "{nope"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).starts_with("roost: error: --payload is not JSON"));

    // A remote run: its output, and its status as the exit code.
    let ran = cli.run(&[
        "run",
        "probe",
        "--remote",
        "--payload",
        r#"{"steps": [{"set": ["k", 1]}]}"#,
    ]);
    assert_eq!(ran.status.code(), Some(0), "{}", text(&ran.stderr));
    assert!(
        text(&ran.stdout).contains("succeeded"),
        "{}",
        text(&ran.stdout)
    );
    let failed = cli.run(&[
        "run",
        "probe",
        "--remote",
        "--payload",
        r#"{"steps": [{"fail": "on purpose"}]}"#,
    ]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        text(&failed.stdout).contains("failed"),
        "{}",
        text(&failed.stdout)
    );

    // Connections: nothing stored yet; a link for slack; an unknown one.
    let credentials = cli.ok(&["credentials", "list"]);
    assert_eq!(
        credentials.lines().count(),
        1,
        "only the header: {credentials}"
    );
    let link = cli.ok(&["connect", "slack", "--no-open"]);
    assert!(
        link.trim()
            .starts_with(&format!("{}/integrations/slack/setup?", server.url)),
        "{link}"
    );
    let unknown = cli.refused(&["connect", "nope", "--no-open"]);
    assert!(
        unknown.contains("404 Not Found") && unknown.contains("(unknown_integration)"),
        "{unknown}"
    );
    let not_stored = cli.refused(&["credentials", "delete", "slack"]);
    assert!(not_stored.contains("(not_found)"), "{not_stored}");
    // A key goes in through standard input, never the command line.
    let set = cli.with_stdin(
        &["credentials", "set", "sendgrid", "api_key"],
        "SG.a-test-key\n",
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    let credentials = cli.ok(&["credentials", "list"]);
    assert!(
        credentials.contains("sendgrid") && credentials.contains("connected"),
        "{credentials}"
    );
    assert!(!credentials.contains("SG.a-test-key"));
    let short = cli.with_stdin(&["credentials", "set", "sendgrid", "api_key"], "SG\n");
    assert_eq!(short.status.code(), Some(1));
    assert!(
        text(&short.stderr).contains("(invalid_credential)"),
        "{}",
        text(&short.stderr)
    );
    let none = cli.with_stdin(&["credentials", "set", "sendgrid", "api_key"], "");
    assert_eq!(none.status.code(), Some(2));
    cli.ok(&["credentials", "delete", "sendgrid"]);

    // The older listings: `--json`, and refusals with their code.
    let runs: serde_json::Value = serde_json::from_str(&cli.ok(&["runs", "--json"])).unwrap();
    assert!(runs["runs"].as_array().unwrap().len() >= 3, "{runs}");
    let messages: serde_json::Value =
        serde_json::from_str(&cli.ok(&["messages", "--json"])).unwrap();
    assert!(messages["messages"].is_array(), "{messages}");
    let registry: serde_json::Value =
        serde_json::from_str(&cli.ok(&["integrations", "list", "--json"])).unwrap();
    assert!(registry.to_string().contains("sendgrid"), "{registry}");
    let hooks: serde_json::Value =
        serde_json::from_str(&cli.ok(&["hooks", "list", "echo", "--json"])).unwrap();
    assert!(
        hooks["handlers"].is_array() && hooks["webhooks"].is_array(),
        "{hooks}"
    );
    let state = cli.ok(&["state", "list", "probe", "--json"]);
    let entry: serde_json::Value = serde_json::from_str(state.lines().next().unwrap()).unwrap();
    assert_eq!(
        (entry["key"].clone(), entry["value"].clone()),
        (json!("k"), json!(1)),
        "{state}"
    );
    let no_run = cli.refused(&["logs", "run_nope"]);
    assert!(
        no_run.contains("404 Not Found") && no_run.contains("(not_found)"),
        "{no_run}"
    );
    let bad_status = cli.refused(&["runs", "--status", "sleepy"]);
    assert!(
        bad_status.contains("400 Bad Request") && bad_status.contains("("),
        "{bad_status}"
    );
    cli.ok(&["scripts", "delete", "echo"]);
    let gone = cli.run(&["scripts", "show", "echo"]);
    assert_eq!(gone.status.code(), Some(2), "{}", text(&gone.stderr));
    assert!(
        text(&gone.stderr).contains("echo"),
        "{}",
        text(&gone.stderr)
    );
    let wrong = cli.refused(&["scripts", "show", "scr_nope"]);
    assert!(wrong.contains("(not_found)"), "{wrong}");
    drop(server);
}
