//! Deploy: the Wren flow. Unknown integration → refused with the known ones;
//! credentials missing → refused with a setup URL per integration; otherwise
//! the component is validated, compiled once and stored as a new immutable
//! version with its triggers, all or nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use roost_sandbox::metadata::{self, HandlerMeta, ScriptMetadata};
use roost_sandbox::{Sandbox, SandboxError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::credentials::{CredentialError, CredentialService};
use crate::registry::Registry;
use crate::store::{
    NewScriptVersion, ScriptCaps, ScriptVersion, Store, StoreError, TriggerKind, TriggerRow,
};

/// Metadata a deploy body may state; it must agree with what the component embeds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredMetadata {
    /// Integrations the script uses.
    #[serde(default)]
    pub integrations: Option<Vec<String>>,
    /// Handlers and their triggers.
    #[serde(default)]
    pub triggers: Option<Vec<HandlerMeta>>,
}

/// A request to deploy.
#[derive(Debug)]
pub struct DeployRequest {
    /// Script name (unique per user; a new version when it exists).
    pub name: String,
    /// Component bytes.
    pub component: Vec<u8>,
    /// What the body says about the script.
    pub declared: DeclaredMetadata,
    /// Retry policy to set (None keeps the script's current one).
    pub retries: Option<crate::store::RetryPolicy>,
    /// Run limits to set (None keeps the script's current ones).
    pub limits: Option<crate::store::ScriptLimits>,
}

/// One integration to connect before the script can deploy.
#[derive(Debug, Clone, Serialize)]
pub struct SetupLink {
    /// Integration id.
    pub integration: String,
    /// Where to connect it.
    pub setup_url: String,
}

/// An integration a script needs that this server has no OAuth client for.
#[derive(Debug, Clone, Serialize)]
pub struct Unconfigured {
    /// Integration id.
    pub integration: String,
    /// What the operator must set.
    pub settings: String,
}

/// Why a deploy was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The name is not acceptable.
    #[error("invalid script name: {0}")]
    InvalidName(String),
    /// The bytes are not a runnable guest.
    #[error("{0}")]
    InvalidWasm(String),
    /// Neither the component nor the body says what the script uses.
    #[error(
        "the component carries no roost metadata; build it with the roost SDK, or state \
         `metadata.integrations` and `metadata.triggers` in the request"
    )]
    MissingMetadata,
    /// The body contradicts the component.
    #[error("the request metadata contradicts the component: {0}")]
    MetadataMismatch(String),
    /// A limit is beyond the server's maxima.
    #[error("{0}")]
    InvalidLimits(String),
    /// The retry policy is out of range.
    #[error("{0}")]
    InvalidRetries(String),
    /// A schedule's cron expression or timezone is invalid.
    #[error("invalid schedule: {0}")]
    InvalidSchedule(String),
    /// An HTTP handler's method or path is invalid, or two handlers answer
    /// the same method and path.
    #[error("invalid HTTP handler: {0}")]
    InvalidHttpHandler(String),
    /// A tool without a description, or whose input is not described by
    /// a JSON Schema of an object.
    #[error("invalid tool: {0}")]
    InvalidTool(String),
    /// Flow control that is not valid (debounce on a handler no event
    /// starts, a period out of range, a malformed key).
    #[error("invalid flow control: {0}")]
    InvalidFlow(String),
    /// The user has as many scripts as they may.
    #[error("{0}")]
    Quota(String),
    /// The component is larger than deploys accept.
    #[error("the component is {0} bytes; deploys accept at most {1}")]
    ComponentTooLarge(usize, usize),
    /// Compiling took longer than deploys allow.
    #[error("compiling the component took longer than {0:?}; it was not deployed")]
    CompileTimeout(std::time::Duration),
    /// An integration is named twice.
    #[error("integration `{0}` is listed twice")]
    DuplicateIntegration(String),
    /// Integrations the registry does not know.
    #[error("unknown integration(s): {}", unknown.join(", "))]
    UnknownIntegrations {
        /// The unknown ids.
        unknown: Vec<String>,
        /// The known ids.
        known: Vec<String>,
    },
    /// Integrations to connect first that this server cannot connect: its
    /// operator has not configured their OAuth client.
    #[error("this server cannot connect {} yet: its operator must configure {}", .0.iter().map(|u| u.integration.as_str()).collect::<Vec<_>>().join(", "), .0.iter().map(|u| u.settings.as_str()).collect::<Vec<_>>().join("; "))]
    NotConfigured(Vec<Unconfigured>),
    /// Credentials to connect first.
    #[error("connect these integrations first: {}", .0.iter().map(|l| l.integration.as_str()).collect::<Vec<_>>().join(", "))]
    MissingCredentials(Vec<SetupLink>),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Credential lookup failed.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
}

/// What deploy needs.
pub struct DeployService {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Integration registry.
    pub registry: Arc<Registry>,
    /// Credentials.
    pub credentials: CredentialService,
    /// The sandbox compiles (and caches) components.
    pub sandbox: Arc<Sandbox>,
    /// Base URL of setup links.
    pub base_url: String,
    /// Signs setup links so they only work for the user they were made for.
    pub links: crate::setup_link::SetupLinks,
    /// The most a script may ask for at deploy.
    pub max_limits: roost_sandbox::RunLimits,
    /// Per-user caps and the compile time limit.
    pub abuse: crate::abuse::AbuseLimits,
    /// Compile in a child process, killed at the time limit.
    pub compiler: Option<Compiler>,
    /// Which OAuth integrations this server can connect.
    pub oauth: Arc<crate::oauth::OAuth>,
    /// How many deploys may compile at once (`max_concurrent_compiles`).
    pub compile_slots: Arc<tokio::sync::Semaphore>,
    /// Tells the webhook subscriptions a user's event types changed.
    pub nudge: crate::subscriptions::Nudge,
    /// Told of every deploy (agents' tool lists follow).
    pub changes: crate::scripts::ScriptChanges,
}

/// A `roost compile` child process compiling into the server's cache.
#[derive(Debug, Clone)]
pub struct Compiler {
    /// The `roost` executable.
    pub program: std::path::PathBuf,
    /// The server's artifact cache.
    pub cache_dir: std::path::PathBuf,
}

impl Compiler {
    /// Compiles `component` into the cache, killing the child at `limit`.
    async fn compile(
        &self,
        component: &[u8],
        limit: std::time::Duration,
    ) -> Result<(), DeployError> {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(&self.program)
            .arg("compile")
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .env_clear()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| DeployError::InvalidWasm(format!("starting the compiler: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped");
        let input = component.to_vec();
        let feed = tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
        let outcome = tokio::time::timeout(limit, child.wait_with_output()).await;
        feed.abort();
        match outcome {
            // Dropping the timed-out future kills the child (kill_on_drop).
            Err(_) => Err(DeployError::CompileTimeout(limit)),
            Ok(Err(e)) => Err(DeployError::InvalidWasm(format!(
                "running the compiler: {e}"
            ))),
            Ok(Ok(output)) if output.status.success() => Ok(()),
            Ok(Ok(output)) => Err(DeployError::InvalidWasm(
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            )),
        }
    }
}

impl DeployService {
    /// A signed link that connects `definition` for `user_id`.
    pub fn setup_link(
        &self,
        definition: &crate::registry::IntegrationDefinition,
        user_id: &str,
    ) -> String {
        self.links.sign(
            &definition.setup_url(&self.base_url, user_id),
            &definition.integration_id,
            user_id,
        )
    }

    /// Runs the deploy flow for `user_id`.
    pub async fn deploy(
        &self,
        user_id: &str,
        request: DeployRequest,
    ) -> Result<ScriptVersion, DeployError> {
        check_name(&request.name)?;
        if request.component.len() > self.abuse.max_component_bytes {
            return Err(DeployError::ComponentTooLarge(
                request.component.len(),
                self.abuse.max_component_bytes,
            ));
        }
        let scripts = self.store.list_scripts(user_id).await?;
        if scripts.len() >= self.abuse.max_scripts_per_user
            && !scripts.iter().any(|s| s.name == request.name)
        {
            return Err(quota(i64::try_from(scripts.len()).unwrap_or(i64::MAX)));
        }
        if let Some(retries) = &request.retries
            && !(0..=10).contains(&retries.max)
        {
            return Err(DeployError::InvalidRetries(format!(
                "retries.max must be 0 to 10, not {}",
                retries.max
            )));
        }
        if let Some(limits) = &request.limits {
            check_limits(limits, &self.max_limits)?;
        }
        let metadata = resolve_metadata(&request.component, &request.declared)?;

        for handler in &metadata.handlers {
            if let roost_sandbox::Trigger::Schedule { cron, timezone } = &handler.trigger {
                crate::triggers::schedule::Schedule::parse(cron, timezone.as_deref()).map_err(
                    |reason| {
                        DeployError::InvalidSchedule(format!(
                            "handler `{}`: {reason}",
                            handler.name
                        ))
                    },
                )?;
            }
        }
        crate::triggers::http::check_handlers(&metadata.handlers)
            .map_err(DeployError::InvalidHttpHandler)?;
        crate::triggers::tool::check_tools(&request.name, &metadata.handlers)
            .map_err(DeployError::InvalidTool)?;
        crate::triggers::flow_control::check_flows(&metadata.handlers)
            .map_err(DeployError::InvalidFlow)?;
        let unknown = self.registry.unknown(&metadata.integrations);
        if !unknown.is_empty() {
            return Err(DeployError::UnknownIntegrations {
                unknown,
                known: self.registry.ids(),
            });
        }
        let definitions: Vec<_> = metadata
            .integrations
            .iter()
            .filter_map(|id| self.registry.get(id).cloned())
            .collect();
        let missing = self.credentials.missing(user_id, &definitions).await?;
        let unconfigured: Vec<Unconfigured> = missing
            .iter()
            .filter_map(|d| {
                Some(Unconfigured {
                    integration: d.integration_id.clone(),
                    settings: self.oauth.missing_client_settings(d)?,
                })
            })
            .collect();
        if !unconfigured.is_empty() {
            return Err(DeployError::NotConfigured(unconfigured));
        }
        if !missing.is_empty() {
            let links = missing
                .iter()
                .map(|d| SetupLink {
                    integration: d.integration_id.clone(),
                    setup_url: self.setup_link(d, user_id),
                })
                .collect();
            return Err(DeployError::MissingCredentials(links));
        }

        // Compiling is CPU-heavy; keep it off the async workers. The sandbox
        // caches the artifact so the first run does not compile again.
        let sandbox = self.sandbox.clone();
        let component = request.component;
        // A component built to take forever to compile is refused after the
        // limit. With a compiler process (`roost serve`), the child is
        // killed and the load below hits the cache it filled. In process,
        // the compiling thread cannot be interrupted: it finishes in the
        // background and its artifact is never used.
        // Compiles wait their turn: a burst of deploys starts no more
        // compilers than the server has slots for (the time limit counts
        // from the start of each one's own compile).
        let _slot = self
            .compile_slots
            .acquire()
            .await
            .expect("the compile slots are never closed");
        if let Some(compiler) = &self.compiler {
            compiler
                .compile(&component, self.abuse.compile_timeout)
                .await
                .inspect_err(|err| {
                    if matches!(err, DeployError::CompileTimeout(_)) {
                        tracing::warn!(user = user_id, limit = ?self.abuse.compile_timeout, "deploy stopped: compiling took too long; the compiler was killed");
                    }
                })?;
        }
        let compile = tokio::task::spawn_blocking(move || {
            let loaded = sandbox.load(&component);
            (component, loaded)
        });
        let (component, loaded) = tokio::time::timeout(self.abuse.compile_timeout, compile)
            .await
            .map_err(|_| {
                tracing::warn!(user = user_id, limit = ?self.abuse.compile_timeout, "deploy stopped: compiling took too long");
                DeployError::CompileTimeout(self.abuse.compile_timeout)
            })?
            .map_err(|e| DeployError::InvalidWasm(format!("compilation did not finish: {e}")))?;
        let loaded = loaded.map_err(|err| DeployError::InvalidWasm(err.to_string()))?;
        let metadata = crate::triggers::tool::describe(&self.sandbox, &loaded, metadata)
            .await
            .map_err(DeployError::InvalidTool)?;

        let new = NewScriptVersion {
            user_id: user_id.to_string(),
            name: request.name,
            content_hash: hex::encode(Sha256::digest(&component)),
            triggers: triggers_of(&metadata),
            retries: request.retries,
            limits: request.limits,
            metadata: serde_json::to_value(&metadata).expect("metadata serialises"),
            component,
            caps: ScriptCaps {
                max_scripts: i64::try_from(self.abuse.max_scripts_per_user).ok(),
                max_versions: Some(self.abuse.max_versions_per_script),
            },
        };
        // The caps are checked above for a quick answer, and again in the
        // write, where deploys arriving together cannot all pass them.
        let version = match self.store.create_script_version(&new).await {
            Err(StoreError::ScriptQuota { scripts }) => return Err(quota(scripts)),
            other => other?,
        };
        tracing::info!(user = user_id, script = %version.script_id, version = version.version, "script deployed");
        self.nudge.user(user_id);
        self.changes.changed(user_id);
        Ok(version)
    }
}

fn check_limits(
    limits: &crate::store::ScriptLimits,
    max: &roost_sandbox::RunLimits,
) -> Result<(), DeployError> {
    let ceilings = [
        (
            "timeout_ms",
            limits.timeout_ms,
            i64::try_from(max.timeout.as_millis()).unwrap_or(i64::MAX),
        ),
        (
            "memory_bytes",
            limits.memory_bytes,
            i64::try_from(max.max_memory_bytes).unwrap_or(i64::MAX),
        ),
        (
            "output_bytes",
            limits.output_bytes,
            i64::try_from(max.max_output_bytes).unwrap_or(i64::MAX),
        ),
    ];
    for (name, value, ceiling) in ceilings {
        if let Some(value) = value
            && !(1..=ceiling).contains(&value)
        {
            return Err(DeployError::InvalidLimits(format!(
                "limits.{name} must be between 1 and {ceiling} on this server, not {value}"
            )));
        }
    }
    Ok(())
}

fn quota(scripts: i64) -> DeployError {
    DeployError::Quota(format!(
        "you have {scripts} scripts, the most this server allows; delete one first"
    ))
}

pub(crate) fn check_name(name: &str) -> Result<(), DeployError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(DeployError::InvalidName(format!(
            "`{name}`: use 1-64 of [A-Za-z0-9._-]"
        )))
    }
}

/// The script's metadata: what the component embeds, checked against what
/// the body states (which is all there is for a component without any).
pub(crate) fn resolve_metadata(
    component: &[u8],
    declared: &DeclaredMetadata,
) -> Result<ScriptMetadata, DeployError> {
    if let Some(list) = &declared.integrations {
        let mut seen = BTreeSet::new();
        for id in list {
            if !seen.insert(id) {
                return Err(DeployError::DuplicateIntegration(id.clone()));
            }
        }
    }
    let embedded = metadata::read(component).map_err(|err| match err {
        SandboxError::Metadata(reason) => {
            DeployError::InvalidWasm(format!("malformed roost metadata: {reason}"))
        }
        other => DeployError::InvalidWasm(other.to_string()),
    })?;
    let declared_integrations = declared.integrations.as_ref().map(|list| {
        let mut sorted = list.clone();
        sorted.sort();
        sorted
    });
    let declared_triggers = declared.triggers.as_ref().map(|list| {
        let mut sorted = list.clone();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        sorted
    });
    match embedded {
        Some(embedded) => {
            if let Some(list) = &declared_integrations
                && *list != embedded.integrations
            {
                return Err(DeployError::MetadataMismatch(format!(
                    "the request lists integrations [{}] but the component declares [{}]",
                    list.join(", "),
                    embedded.integrations.join(", ")
                )));
            }
            if let Some(list) = &declared_triggers
                && *list != embedded.handlers
            {
                return Err(DeployError::MetadataMismatch(
                    "the request's triggers differ from the handlers the component declares".into(),
                ));
            }
            Ok(embedded)
        }
        None => match (declared_integrations, declared_triggers) {
            (Some(integrations), Some(handlers)) => Ok(ScriptMetadata {
                sdk_version: None,
                handlers,
                integrations,
                refresh_tokens: Vec::new(),
            }),
            _ => Err(DeployError::MissingMetadata),
        },
    }
}

/// The triggers a script's metadata declares, one per handler.
pub fn triggers_of(metadata: &roost_sandbox::metadata::ScriptMetadata) -> Vec<TriggerRow> {
    use roost_sandbox::Trigger;
    metadata
        .handlers
        .iter()
        .map(|handler| {
            let (kind, spec, timezone) = match &handler.trigger {
                Trigger::Manual => (TriggerKind::Manual, String::new(), None),
                Trigger::Schedule { cron, timezone } => {
                    (TriggerKind::Schedule, cron.clone(), timezone.clone())
                }
                Trigger::Event { name } => (TriggerKind::Event, name.clone(), None),
                Trigger::Http(http) => (
                    TriggerKind::Http,
                    serde_json::to_string(http).expect("a trigger serialises"),
                    None,
                ),
                Trigger::Mcp(tool) => (
                    TriggerKind::Mcp,
                    serde_json::to_string(tool).expect("a trigger serialises"),
                    None,
                ),
            };
            TriggerRow {
                handler: handler.name.clone(),
                kind,
                spec,
                timezone,
                flow: handler
                    .flow
                    .as_ref()
                    .map(|flow| serde_json::to_string(flow).expect("a flow serialises")),
            }
        })
        .collect()
}
