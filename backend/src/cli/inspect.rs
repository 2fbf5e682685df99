use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub(super) struct InspectArgs {
    /// The component (`.wasm`) to read.
    component: PathBuf,
}

pub(super) fn execute(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("reading {}", args.component.display()))?;
    let metadata = roost_sandbox::metadata::read(&bytes)
        .with_context(|| format!("inspecting {}", args.component.display()))?
        .with_context(|| {
            format!(
                "{} carries no roost metadata; build scripts with the roost SDK (roost-sdk) \
                 and its `main!` macro",
                args.component.display()
            )
        })?;
    println!("{}", serde_json::to_string_pretty(&metadata)?);
    Ok(ExitCode::SUCCESS)
}
