//! `roost integration check FILE`: validates an integration definition as
//! `roost serve` would at startup, without a server.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::registry::Registry;

#[derive(Debug, clap::Subcommand)]
pub(super) enum IntegrationCommand {
    /// Validate a definition file as startup would (schema, fields, env vars
    /// unique across integrations).
    Check {
        /// The definition (`*.json`).
        file: PathBuf,
    },
}

pub(super) fn execute(command: IntegrationCommand) -> anyhow::Result<ExitCode> {
    match command {
        IntegrationCommand::Check { file } => match Registry::check_file(&file) {
            Ok(definition) => {
                let vars: Vec<&str> = definition
                    .credentials
                    .iter()
                    .flat_map(|spec| std::iter::once(&spec.env_var).chain(&spec.refresh_env_var))
                    .map(String::as_str)
                    .collect();
                println!(
                    "ok: `{}` ({}), {} method(s), auth {:?}; runs get {}",
                    definition.integration_id,
                    definition.name,
                    definition.methods.len(),
                    definition.auth_type,
                    if vars.is_empty() {
                        "no credential variables".to_string()
                    } else {
                        vars.join(", ")
                    }
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                eprintln!("roost: {err}");
                Ok(ExitCode::from(1))
            }
        },
    }
}
