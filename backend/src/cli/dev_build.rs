//! `roost dev`'s build: the script crate found and checked, built with
//! cargo for wasm32-wasip2, and its component found in cargo's own
//! account of what it made (JSON artifact messages), wherever the target
//! directory is (the crate's, a workspace's, `CARGO_TARGET_DIR`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

/// The target scripts are built for.
const TARGET: &str = "wasm32-wasip2";

/// A script crate: a folder with a Cargo.toml that has a package.
pub(super) struct ScriptCrate {
    /// Its folder (absolute).
    pub(super) dir: PathBuf,
    /// Its Cargo.toml (absolute).
    pub(super) manifest: PathBuf,
    /// The package's name.
    pub(super) name: String,
}

impl ScriptCrate {
    /// The crate at `path`, or why it is not one.
    pub(super) fn open(path: &Path) -> anyhow::Result<Self> {
        let dir = std::fs::canonicalize(path)
            .with_context(|| format!("{} does not exist", path.display()))?;
        let manifest = dir.join("Cargo.toml");
        let text = match std::fs::read_to_string(&manifest) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} is not a script crate: it has no Cargo.toml (`cargo new --bin NAME` makes one; see \"Writing a script\" in the README)",
                dir.display()
            ),
            Err(err) => return Err(err).with_context(|| format!("reading {}", manifest.display())),
        };
        let parsed: toml::Table =
            toml::from_str(&text).with_context(|| format!("{} is not TOML", manifest.display()))?;
        let Some(name) = parsed
            .get("package")
            .and_then(|package| package.get("name"))
            .and_then(|name| name.as_str())
        else {
            bail!(
                "{} has no [package]: a workspace is not a script crate; point `roost dev` at one of its members",
                manifest.display()
            );
        };
        Ok(Self {
            name: name.to_string(),
            dir,
            manifest,
        })
    }

    /// Builds the crate, cargo's progress and the compiler's diagnostics
    /// going to stderr; the component, or `None` when the build failed.
    pub(super) async fn build(&self) -> anyhow::Result<Option<PathBuf>> {
        let mut child = tokio::process::Command::new("cargo")
            .args(["build", "--release", "--target", TARGET])
            .arg("--message-format=json-render-diagnostics")
            .arg("--manifest-path")
            .arg(&self.manifest)
            // So that the crate's rust-toolchain.toml, if any, applies.
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Ctrl-C during a build must not leave cargo running.
            .kill_on_drop(true)
            .spawn()
            .context("running cargo (is Rust installed? https://rustup.rs)")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut made = Vec::new();
        while let Some(line) = lines.next_line().await.context("reading cargo's output")? {
            // Lines that are not JSON are a build script's own: not ours.
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            made.extend(self.components(&message));
        }
        if !child.wait().await.context("waiting for cargo")?.success() {
            return Ok(None);
        }
        self.pick(made).map(Some)
    }

    /// The `.wasm` files an artifact message of this crate names, with
    /// their target's name.
    fn components(&self, message: &Value) -> Vec<(String, PathBuf)> {
        if message["reason"] != "compiler-artifact" {
            return Vec::new();
        }
        let ours = message["manifest_path"]
            .as_str()
            .and_then(|path| std::fs::canonicalize(path).ok())
            .is_some_and(|path| path == self.manifest);
        if !ours {
            return Vec::new();
        }
        let target = message["target"]["name"].as_str().unwrap_or_default();
        message["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|file| file.ends_with(".wasm"))
            .map(|file| (target.to_string(), PathBuf::from(file)))
            .collect()
    }

    /// The component among what the build made: the package's own target
    /// when it has several.
    fn pick(&self, mut made: Vec<(String, PathBuf)>) -> anyhow::Result<PathBuf> {
        made.dedup();
        let own = |target: &str| target.replace('-', "_") == self.name.replace('-', "_");
        if let Some((_, path)) = made.iter().find(|(target, _)| own(target)) {
            return Ok(path.clone());
        }
        match made.as_slice() {
            [(_, path)] => Ok(path.clone()),
            [] => bail!(
                "building {} made no .wasm: a script crate has a binary (src/main.rs with `roost_sdk::main!`)",
                self.dir.display()
            ),
            several => bail!(
                "building {} made several components ({}); none is named after the package",
                self.dir.display(),
                several
                    .iter()
                    .map(|(target, _)| target.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Fails, saying what to run, when the toolchain that builds `dir` has no
/// wasm32-wasip2 standard library (cargo's own error says it less plainly).
pub(super) fn check_target(dir: &Path) -> anyhow::Result<()> {
    let output = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .context("running rustc (is Rust installed? https://rustup.rs)")?;
    if !output.status.success() {
        bail!("`rustc --print sysroot` failed in {}", dir.display());
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        bail!("the {TARGET} target is not installed: run `rustup target add {TARGET}`");
    }
    Ok(())
}
