//! `roost dev` as a user lives in it: the real binary building a real
//! script crate (a copy of examples/hello) with cargo, deploying it to a
//! real server and printing its runs' output; then, watching, a save that
//! changes the output, a syntax error that is reported while the watch
//! goes on, and a clean stop.

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::process::{Server, roost, text};

/// A cold build of the SDK and its dependencies for wasm takes minutes
/// on a slow machine; the target directory is shared, so only the first
/// build anywhere pays it.
const FIRST_BUILD: Duration = Duration::from_secs(900);
/// A rebuild of the script crate alone.
const REBUILD: Duration = Duration::from_secs(180);

/// A standalone script crate named `name` in a new temporary folder: the
/// hello example with its own Cargo.toml (the SDK by path, detached from
/// any workspace) and the examples' Cargo.lock, so no new versions are
/// fetched.
fn script_crate(name: &str) -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let sdk = repo.join("sdk-guest").canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::copy(
        repo.join("examples/hello/src/main.rs"),
        dir.path().join("src/main.rs"),
    )
    .unwrap();
    std::fs::copy(
        repo.join("examples/Cargo.lock"),
        dir.path().join("Cargo.lock"),
    )
    .unwrap();
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\nroost-sdk = {{ path = {sdk:?} }}\nserde_json = \"1\"\n\n\
         [profile.release]\nopt-level = \"s\"\ndebug = false\nstrip = \"debuginfo\"\n\n\
         [workspace]\n",
        sdk = sdk.display().to_string()
    );
    std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
    dir
}

/// The variables of a `roost dev` child: the server, the token, and a
/// target directory shared by the tests (each crate has its own name, so
/// their components do not overwrite each other).
fn dev_env(server: &Server, token: &str) -> Vec<(String, String)> {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("roost-dev");
    vec![
        ("ROOST_SERVER".into(), server.url.clone()),
        ("ROOST_TOKEN".into(), token.into()),
        ("CARGO_TARGET_DIR".into(), target.display().to_string()),
    ]
}

/// The host build's flags are not for the guest.
fn clean(command: &mut Command) -> &mut Command {
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        command.env_remove(var);
    }
    command
}

fn dev(data: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roost"));
    clean(&mut command)
        .arg("dev")
        .args(args)
        .env("ROOST_DATA_DIR", data)
        .envs(env.iter().map(|(k, v)| (k, v)));
    command.output().unwrap()
}

fn user(data: &Path) -> String {
    text(&roost(data, &["user", "create", "ada"], &[]).stdout)
        .trim()
        .to_string()
}

#[test]
fn dev_once_builds_deploys_runs_and_prints_the_output() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[], &[]);
    let token = user(data.path());
    let env = dev_env(&server, &token);
    let script = script_crate("dev-once");
    let dir = script.path().to_str().unwrap();

    let out = dev(
        data.path(),
        &[
            dir,
            "--once",
            "--run",
            "--handler",
            "hello",
            "--payload",
            r#"{"n":7}"#,
        ],
        &env,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let deployed = stdout.lines().find(|l| l.starts_with("deployed ")).unwrap();
    assert!(
        deployed.starts_with("deployed `dev-once`: script scr_")
            && deployed.ends_with(" version 1"),
        "{stdout}"
    );
    // The run's output, each line behind its label, then how it ended.
    let greeting = stdout
        .lines()
        .find(|l| l.ends_with("] hello from roost"))
        .unwrap_or_else(|| panic!("no output: {stdout}\n{stderr}"));
    let label = &greeting[..greeting.find(']').unwrap() + 1];
    assert!(label.starts_with("[hello "), "{greeting}");
    assert!(
        stdout.contains(&format!("{label} payload {{\"n\":7}}\n")),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("{label} succeeded in ")),
        "{stdout}"
    );

    // A refusal by the server: exit 1, one line with its code.
    let mut bad = env.clone();
    bad[1].1 = "rst_not-a-token".into();
    let out = dev(data.path(), &[dir, "--once"], &bad);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let refused = text(&out.stderr);
    assert!(
        refused.contains("roost: deploy refused (401 Unauthorized)"),
        "{refused}"
    );

    // Not a crate: exit 2 before any build, saying so.
    let empty = tempfile::tempdir().unwrap();
    let out = dev(
        data.path(),
        &[empty.path().to_str().unwrap(), "--once"],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("is not a script crate"), "{said}");

    // A toolchain without the wasm target (a `rustc` whose sysroot has
    // none): exit 2, saying what to run, before any build.
    let bin = tempfile::tempdir().unwrap();
    let sysroot = bin
        .path()
        .join("sysroot/lib/rustlib/x86_64-unknown-linux-gnu");
    std::fs::create_dir_all(&sysroot).unwrap();
    let rustc = bin.path().join("rustc");
    std::fs::write(
        &rustc,
        format!("#!/bin/sh\necho {}\n", bin.path().join("sysroot").display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&rustc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut no_target = env.clone();
    no_target.push(("PATH".into(), path));
    let out = dev(data.path(), &[dir, "--once"], &no_target);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.contains("run `rustup target add wasm32-wasip2`"),
        "{said}"
    );
}

/// Lines a child printed so far, both streams, in order of arrival.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn read_from(&self, stream: impl std::io::Read + Send + 'static) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
    }

    fn all(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    fn count(&self, what: impl Fn(&str) -> bool) -> usize {
        self.0.lock().unwrap().iter().filter(|l| what(l)).count()
    }

    /// Waits until a line after the first `from` ones satisfies `what`.
    fn wait_for(
        &self,
        child: &mut Child,
        from: usize,
        deadline: Duration,
        what: impl Fn(&str) -> bool,
    ) -> String {
        let began = Instant::now();
        loop {
            if let Some(line) = self.0.lock().unwrap()[from..].iter().find(|l| what(l)) {
                return line.clone();
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("roost dev ended ({status}):\n{}", self.all());
            }
            assert!(
                began.elapsed() < deadline,
                "nothing after {deadline:?}:\n{}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Kills the child if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dev_watches_rebuilds_on_save_reports_build_errors_and_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[], &[]);
    let token = user(data.path());
    let env = dev_env(&server, &token);
    let script = script_crate("dev-watch");
    let main_rs = script.path().join("src/main.rs");
    let source = std::fs::read_to_string(&main_rs).unwrap();
    assert!(source.contains("\"hello from roost\""));

    let mut command = Command::new(env!("CARGO_BIN_EXE_roost"));
    clean(&mut command)
        .arg("dev")
        .arg(script.path())
        .arg("--run")
        .env("ROOST_DATA_DIR", data.path())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // No --handler: the runs' lines name what started them.
    let mut child = Running(command.spawn().unwrap());
    let seen = Seen::default();
    seen.read_from(child.0.stdout.take().unwrap());
    seen.read_from(child.0.stderr.take().unwrap());

    // The first build, deploy and run.
    seen.wait_for(&mut child.0, 0, FIRST_BUILD, |l| {
        l.starts_with("deployed `dev-watch`: script scr_") && l.ends_with(" version 1")
    });
    seen.wait_for(&mut child.0, 0, REBUILD, |l| {
        l.starts_with("[manual ") && l.ends_with("] hello from roost")
    });
    seen.wait_for(&mut child.0, 0, REBUILD, |l| {
        l.starts_with("[manual ") && l.contains("] succeeded in ")
    });
    seen.wait_for(&mut child.0, 0, REBUILD, |l| {
        l.starts_with("roost: watching ")
    });

    // A burst of saves is one build: version 2, whose run prints the new text.
    let from = seen.len();
    let edited = source.replace("\"hello from roost\"", "\"hello again from roost\"");
    for _ in 0..3 {
        std::fs::write(&main_rs, &edited).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    seen.wait_for(&mut child.0, from, REBUILD, |l| {
        l.starts_with("[manual ") && l.ends_with("] hello again from roost")
    });
    let deploys = |seen: &Seen| seen.count(|l| l.starts_with("deployed `dev-watch`"));
    assert_eq!(deploys(&seen), 2, "{}", seen.all());
    let builds = seen.count(|l| l == "roost: building dev-watch");
    assert_eq!(builds, 2, "one build per burst of saves:\n{}", seen.all());
    assert!(
        seen.all().contains("deployed `dev-watch`: script scr_")
            && seen.all().contains(" version 2"),
        "{}",
        seen.all()
    );

    // A syntax error: the compiler's diagnostics, no deploy, still watching.
    let from = seen.len();
    std::fs::write(&main_rs, format!("{edited}\nfn broken( {{\n")).unwrap();
    seen.wait_for(&mut child.0, from, REBUILD, |l| {
        l.starts_with("roost: the build failed; nothing was deployed")
    });
    let diagnostics = seen.0.lock().unwrap()[from..].join("\n");
    assert!(diagnostics.contains("error"), "{diagnostics}");
    assert!(diagnostics.contains("src/main.rs"), "{diagnostics}");
    assert_eq!(deploys(&seen), 2, "{}", seen.all());
    assert!(child.0.try_wait().unwrap().is_none(), "{}", seen.all());

    // Fixed again: the watch went on, version 3 runs.
    let from = seen.len();
    let fixed = source.replace("\"hello from roost\"", "\"hello at last from roost\"");
    std::fs::write(&main_rs, fixed).unwrap();
    seen.wait_for(&mut child.0, from, REBUILD, |l| {
        l.starts_with("[manual ") && l.ends_with("] hello at last from roost")
    });
    assert_eq!(deploys(&seen), 3, "{}", seen.all());

    // SIGTERM (as Ctrl-C): a clean stop.
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}:\n{}", seen.all());
    std::thread::sleep(Duration::from_millis(200));
    assert!(seen.all().contains("roost: stopped"), "{}", seen.all());
}
