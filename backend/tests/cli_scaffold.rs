//! `roost integration new`: what it generates validates as a server would
//! load it, and the generated client builds and passes its own tests.

use std::path::Path;
use std::process::{Command, Output};

fn roost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(args)
        .output()
        .expect("running roost")
}

fn sdk_path() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sdk-guest")
        .display()
        .to_string()
}

/// `cargo test` in the generated crate, sharing a target directory across
/// runs so only the first one compiles its dependencies.
fn cargo_test(manifest: &Path) -> Output {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("scaffold-tests");
    Command::new(env!("CARGO"))
        .args(["test", "--offline", "--quiet", "--manifest-path"])
        .arg(manifest)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("running cargo")
}

#[test]
fn the_scaffold_validates_builds_and_passes_its_tests() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_str().unwrap();
    for (name, auth, extra) in [
        ("acme-crm", "apikey", None),
        ("widget-hub", "oauth2", Some("--host-only")),
    ] {
        let mut args = vec![
            "integration",
            "new",
            name,
            "--auth",
            auth,
            "--dir",
            base,
            "--sdk-path",
        ];
        let sdk = sdk_path();
        args.push(&sdk);
        args.extend(extra);
        let out = roost(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let root = dir.path().join(name);
        for file in [
            format!("{name}.json"),
            "Cargo.toml".into(),
            "src/lib.rs".into(),
            "tests/definition.rs".into(),
        ] {
            assert!(root.join(&file).exists(), "{file} was not generated");
        }

        let definition = root.join(format!("{name}.json"));
        let out = roost(&["integration", "check", definition.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("2 method(s)"), "{stdout}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&definition).unwrap()).unwrap();
        assert_eq!(json["authType"], auth);
        assert_eq!(
            json["credentialDelivery"].as_str(),
            extra.map(|_| "host"),
            "--host-only sets the delivery"
        );

        let out = cargo_test(&root.join("Cargo.toml"));
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "the generated crate fails:\n{all}");
    }

    // A name that exists, is built in, or is not an id is refused, and
    // nothing is written over.
    for (name, needle) in [
        ("acme-crm", "already exists"),
        ("gmail", "built-in"),
        ("Bad Name", "not an integration id"),
    ] {
        let out = roost(&["integration", "new", name, "--auth", "none", "--dir", base]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(needle), "{stderr}");
    }
}
