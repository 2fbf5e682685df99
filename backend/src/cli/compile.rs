//! `roost compile --cache-dir DIR`: compiles the component on stdin into the
//! artifact cache and exits. `roost serve` runs deploy compilations in this
//! child process so one that takes too long can be killed: wasmtime cannot
//! interrupt a compilation inside a process.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use roost_sandbox::Sandbox;

#[derive(Debug, clap::Args)]
pub(super) struct CompileArgs {
    /// The artifact cache to compile into (the server's).
    #[arg(long)]
    cache_dir: PathBuf,
}

pub(super) fn execute(args: CompileArgs) -> anyhow::Result<ExitCode> {
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes)?;
    // The server's engine settings, so the server finds the artifact.
    let sandbox = Sandbox::new(crate::app::sandbox_config(args.cache_dir))?;
    match sandbox.load(&bytes) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(err) => {
            eprintln!("{err}");
            Ok(ExitCode::from(2))
        }
    }
}
