//! `roost integration check FILE`: validates an integration definition as
//! `roost serve` would at startup, without a server. `roost integration
//! new NAME`: scaffolds a new one (see `scaffold.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use super::scaffold::{ScaffoldAuth, ScaffoldRequest, scaffold};
use crate::registry::{CredentialDelivery, Registry, SecretSource, WebhookDef};

#[derive(Debug, clap::Subcommand)]
pub(super) enum IntegrationCommand {
    /// Validate a definition file as startup would (schema, fields, env vars
    /// unique across integrations).
    Check {
        /// The definition (`*.json`).
        file: PathBuf,
    },
    /// Scaffold a new integration: a definition, a typed SDK client and a
    /// test, which build and pass as generated.
    New {
        /// Integration id (`acme-crm`).
        name: String,
        /// How it authenticates.
        #[arg(long, value_enum)]
        auth: ScaffoldAuth,
        /// Keep credentials on the host (`credentialDelivery: host`):
        /// scripts reach the API only through host-mediated calls.
        #[arg(long)]
        host_only: bool,
        /// Folder to create `<NAME>/` in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The roost SDK (`sdk-guest`) the client depends on; defaults to
        /// the one next to this binary's sources.
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
}

/// One line on how deliveries are checked; reaching it means every test
/// vector came out as it says.
fn webhooks_summary(webhooks: &WebhookDef) -> String {
    let secret = match &webhooks.secret {
        SecretSource::Credential { key } => format!("the user's `{key}`"),
        SecretSource::Server => "the server's secret".to_string(),
    };
    format!(
        "webhooks: HMAC-SHA256 in {} with {secret}; event type from {}, delivery id from {}; \
         {} test vector(s) pass",
        webhooks.signature.header,
        webhooks.event_type.from,
        webhooks.delivery_id,
        webhooks.test_vectors.len()
    )
}

pub(super) fn execute(command: IntegrationCommand) -> anyhow::Result<ExitCode> {
    match command {
        IntegrationCommand::New {
            name,
            auth,
            host_only,
            dir,
            sdk_path,
        } => {
            let root = scaffold(&ScaffoldRequest {
                id: name.clone(),
                auth,
                host_only,
                dir,
                sdk_path,
            })?;
            println!("created {}:", root.display());
            for file in [
                format!("{name}.json"),
                "Cargo.toml".into(),
                "src/lib.rs".into(),
                "tests/definition.rs".into(),
            ] {
                println!("  {file}");
            }
            println!(
                "next: point {name}.json at the real API, `roost integration check {}`, \
                 `cargo test --manifest-path {}`, then serve it with --integrations-dir",
                root.join(format!("{name}.json")).display(),
                root.join("Cargo.toml").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        IntegrationCommand::Check { file } => match Registry::check_file(&file) {
            Ok(definition) => {
                let vars: Vec<&str> = definition
                    .credentials
                    .iter()
                    .flat_map(|spec| std::iter::once(&spec.env_var).chain(&spec.refresh_env_var))
                    .map(String::as_str)
                    .collect();
                let delivery = if definition.credential_delivery == CredentialDelivery::Host {
                    "credentials stay on the host (host-mediated calls only)".to_string()
                } else if vars.is_empty() {
                    "runs get no credential variables".to_string()
                } else {
                    format!("runs get {}", vars.join(", "))
                };
                println!(
                    "ok: `{}` ({}), {} method(s), auth {:?}; {delivery}",
                    definition.integration_id,
                    definition.name,
                    definition.methods.len(),
                    definition.auth_type,
                );
                for method in &definition.methods {
                    let how = match &method.http {
                        Some(http) => format!("{} {}", http.method, http.path),
                        None => "no http mapping: not callable from the host unless roost has code for it".into(),
                    };
                    println!("  {}: {how}", method.id);
                }
                if let Some(webhooks) = &definition.webhooks {
                    println!("  {}", webhooks_summary(webhooks));
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                eprintln!("roost: {err}");
                Ok(ExitCode::from(1))
            }
        },
    }
}
