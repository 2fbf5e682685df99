//! `roost dev [PATH]`: writing a script as a loop of seconds. Builds the
//! crate at PATH for wasm32-wasip2, deploys it, follows its runs' output,
//! and builds and deploys again on every save (`--once`: just once).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher as _};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::client::{ServerArgs, deploy_component, runtime};
use super::dev_build::{ScriptCrate, check_target};
use super::dev_runs::{Watcher, follow_run, label, start_run};

/// Quiet after a change before building: a burst of saves is one build.
const SETTLE: Duration = Duration::from_millis(300);

#[derive(Debug, clap::Args)]
pub(super) struct DevArgs {
    /// The script crate: a folder with its Cargo.toml.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Script name (default: the crate's package name).
    #[arg(long)]
    name: Option<String>,
    /// Build and deploy once, then exit (with --run: once the run has
    /// ended, with exit status 1 unless it succeeded).
    #[arg(long)]
    once: bool,
    /// Start a run after each deploy (or each save that changed nothing).
    #[arg(long)]
    run: bool,
    /// The handler those runs start (needed when the script has several).
    #[arg(long, requires = "run")]
    handler: Option<String>,
    /// Their payload, as JSON.
    #[arg(long, requires = "run", default_value = "null")]
    payload: String,
    #[command(flatten)]
    server: ServerArgs,
}

pub(super) fn execute(args: DevArgs) -> anyhow::Result<ExitCode> {
    let payload: Value = serde_json::from_str(&args.payload)
        .with_context(|| format!("--payload is not JSON: {}", args.payload))?;
    let script = ScriptCrate::open(&args.path)?;
    check_target(&script.dir)?;
    let dev = Dev {
        name: args.name.unwrap_or_else(|| script.name.clone()),
        script,
        server: args.server,
        run: args.run.then_some((args.handler, payload)),
        deployed: None,
        runs: None,
    };
    runtime()?.block_on(async move {
        if args.once {
            dev.once().await
        } else {
            dev.watch().await
        }
    })
}

/// One `roost dev` session.
struct Dev {
    script: ScriptCrate,
    name: String,
    server: ServerArgs,
    /// `--run`: the handler and payload of the run after each deploy.
    run: Option<(Option<String>, Value)>,
    /// The script id and the hash of the component last deployed.
    deployed: Option<(String, [u8; 32])>,
    /// Follows the script's runs, once it has an id.
    runs: Option<Watcher>,
}

impl Dev {
    /// `--once`: build, deploy, and (with `--run`) run and wait for its end.
    async fn once(mut self) -> anyhow::Result<ExitCode> {
        let Some(wasm) = self.build().await? else {
            eprintln!("roost: the build failed; nothing was deployed");
            return Ok(ExitCode::from(2));
        };
        let bytes = read(&wasm)?;
        let Some(deployed) = deploy_component(&self.server, &self.name, &bytes).await? else {
            return Ok(ExitCode::from(1));
        };
        let Some((handler, payload)) = self.run.take() else {
            return Ok(ExitCode::SUCCESS);
        };
        let Some(run_id) = start_run(
            &self.server,
            &deployed.script_id,
            handler.as_deref(),
            &payload,
        )
        .await?
        else {
            return Ok(ExitCode::from(1));
        };
        let label = label(&run_id, handler.as_deref().unwrap_or("manual"));
        let status = follow_run(&self.server, &label, &run_id)
            .await
            .with_context(|| format!("run {run_id}"))?;
        Ok(if status == "succeeded" {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }

    /// Builds and deploys on every change until Ctrl-C (or SIGTERM).
    async fn watch(mut self) -> anyhow::Result<ExitCode> {
        let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
        let dir = self.script.dir.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|event| relevant(&dir, &event)) {
                    let _ = changed.send(());
                }
            })
            .context("watching for changes")?;
        // The folder itself only for Cargo.toml: `target/` is never watched.
        watcher
            .watch(&self.script.dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("watching {}", self.script.dir.display()))?;
        let src = self.script.dir.join("src");
        if src.is_dir() {
            watcher
                .watch(&src, RecursiveMode::Recursive)
                .with_context(|| format!("watching {}", src.display()))?;
        }
        let stop = stopped()?;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                done = self.cycle() => if let Err(err) = done {
                    eprintln!("roost: {err:#}");
                },
            }
            eprintln!(
                "roost: watching {} for changes (Ctrl-C to stop)",
                self.script.dir.display()
            );
            tokio::select! {
                () = &mut stop => break,
                change = changes.recv() => if change.is_none() { break },
            }
            while let Ok(Some(())) = tokio::time::timeout(SETTLE, changes.recv()).await {}
        }
        drop(self.runs.take());
        eprintln!("roost: stopped");
        Ok(ExitCode::SUCCESS)
    }

    /// One build and deploy, and the run after it; what went wrong is
    /// said and the loop goes on.
    async fn cycle(&mut self) -> anyhow::Result<()> {
        let Some(wasm) = self.build().await? else {
            eprintln!("roost: the build failed; nothing was deployed");
            return Ok(());
        };
        let bytes = read(&wasm)?;
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        let script_id = match &self.deployed {
            // A save that changed nothing the component sees (a comment).
            Some((script_id, last)) if *last == hash => {
                eprintln!("roost: the component did not change; not deployed again");
                script_id.clone()
            }
            _ => {
                let Some(deployed) = deploy_component(&self.server, &self.name, &bytes).await?
                else {
                    return Ok(());
                };
                self.deployed = Some((deployed.script_id.clone(), hash));
                deployed.script_id
            }
        };
        if self.runs.as_ref().map(|runs| &runs.script_id) != Some(&script_id) {
            self.runs = Some(Watcher::start(&self.server, &script_id).await?);
        }
        if let Some((handler, payload)) = &self.run {
            // Its output comes through the watcher, like any other run's.
            start_run(&self.server, &script_id, handler.as_deref(), payload).await?;
        }
        Ok(())
    }

    /// Builds the crate, saying how long it took.
    async fn build(&self) -> anyhow::Result<Option<PathBuf>> {
        eprintln!("roost: building {}", self.script.name);
        let began = Instant::now();
        let wasm = self.script.build().await?;
        if let Some(wasm) = &wasm {
            eprintln!(
                "roost: built {} in {:.1} s",
                wasm.display(),
                began.elapsed().as_secs_f64()
            );
        }
        Ok(wasm)
    }
}

fn read(wasm: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))
}

/// Whether `event` changes what the crate builds from: a file under
/// `src/`, or the Cargo.toml or build.rs; not reads, not editors' swap
/// and backup files, not Cargo.lock (cargo writes it while building).
fn relevant(dir: &Path, event: &notify::Event) -> bool {
    let writes = match event.kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Modify(modify) => !matches!(modify, ModifyKind::Metadata(_)),
        EventKind::Access(_) | EventKind::Other => false,
    };
    writes
        && event.paths.iter().any(|path| {
            let Ok(inside) = path.strip_prefix(dir) else {
                return false;
            };
            let file = inside.file_name().and_then(|f| f.to_str()).unwrap_or("");
            let scratch = file.starts_with('.') || file.ends_with('~') || file.ends_with(".swp");
            !scratch
                && (inside.starts_with("src")
                    || file == "Cargo.toml" && inside.parent() == Some(Path::new(""))
                    || inside == Path::new("build.rs"))
        })
}

/// Resolves on Ctrl-C or SIGTERM; the handlers are in place on return.
fn stopped() -> anyhow::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, CreateKind, DataChange};

    use super::*;

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_writes_to_the_sources_and_manifest_start_a_build() {
        let dir = Path::new("/c");
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(relevant(dir, &event(write, "/c/src/main.rs")));
        assert!(relevant(dir, &event(write, "/c/src/deep/mod.rs")));
        assert!(relevant(dir, &event(write, "/c/Cargo.toml")));
        assert!(relevant(
            dir,
            &event(EventKind::Create(CreateKind::File), "/c/build.rs")
        ));
        // cargo reads the sources while it builds: no loop.
        assert!(!relevant(
            dir,
            &event(EventKind::Access(AccessKind::Any), "/c/src/main.rs")
        ));
        assert!(!relevant(dir, &event(write, "/c/Cargo.lock")));
        assert!(!relevant(dir, &event(write, "/c/target/release/x.wasm")));
        assert!(!relevant(dir, &event(write, "/c/src/.main.rs.swp")));
        assert!(!relevant(dir, &event(write, "/c/src/main.rs~")));
        assert!(!relevant(dir, &event(write, "/c/examples/Cargo.toml")));
    }
}
