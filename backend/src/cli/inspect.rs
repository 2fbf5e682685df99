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
    if let Err(err) = crate::triggers::flow_control::check_flows(&metadata.handlers) {
        eprintln!("roost inspect: deploy would refuse this script: {err}");
    }
    // What the component declares stands even when its tools cannot be
    // described: that is what deploy would refuse, said beside it.
    let metadata = match with_tool_schemas(&bytes, metadata.clone()) {
        Ok(described) => described,
        Err(err) => {
            eprintln!("roost inspect: deploy would refuse this script: {err:#}");
            metadata
        }
    };
    println!("{}", serde_json::to_string_pretty(&metadata)?);
    Ok(ExitCode::SUCCESS)
}

/// `metadata` with its tools' input schemas, which the component gives
/// when asked (as deploy asks), so they show what an agent will see.
fn with_tool_schemas(
    bytes: &[u8],
    metadata: roost_sandbox::metadata::ScriptMetadata,
) -> anyhow::Result<roost_sandbox::metadata::ScriptMetadata> {
    if crate::triggers::tool::tools(&metadata.handlers)
        .next()
        .is_none()
    {
        return Ok(metadata);
    }
    let sandbox = roost_sandbox::Sandbox::new(roost_sandbox::SandboxConfig::default())?;
    let guest = sandbox.load(bytes)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(crate::triggers::tool::describe(&sandbox, &guest, metadata))
        .map_err(anyhow::Error::msg)
}
