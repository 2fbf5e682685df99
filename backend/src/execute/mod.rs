//! Turns a claimed run into a sandbox invocation: the version's compiled
//! component, the user's credentials as env vars (OAuth tokens refreshed
//! first), roost's own invocation variables, egress limited to the hosts of
//! the declared integrations, and the run limits. While the guest runs,
//! its host calls (integration methods, outbox messages) are served here,
//! and every credential value is masked out of what it leaves behind.

pub(crate) mod emitted_events;
mod host_calls;
mod host_services;
pub(crate) mod http_reply;
mod live;
pub mod masking;
mod refusals;
pub(crate) mod run_state;
mod scheduled_runs;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use roost_sandbox::metadata::ScriptMetadata;
use roost_sandbox::{
    EgressPolicy, Invocation, Limit, LoadedGuest, RunLimits, Sandbox, Termination, Trigger,
};

pub use host_services::{MAX_MESSAGE_BYTES, MAX_MESSAGES_PER_RUN};
pub use live::LiveOutput;

use crate::connectors::{Connectors, HostCredential};
use crate::oauth::OAuth;
use crate::registry::{CredentialDelivery, Registry, RunProfiles};
use crate::store::{
    RunEffects, RunFinish, RunRow, RunStatus, ScriptSettings, StateQuota, Store, TriggerKind,
};
use host_services::{RunServices, ServiceDeps};
use masking::Masker;
use refusals::{Given, GivenCredentials};
use tracing::Instrument as _;

/// The sandbox's span in run `run_id`'s trace: from loading the guest to
/// its end, beneath the worker's span.
fn sandbox_span(run_id: &str) -> tracing::Span {
    let span = crate::telemetry::span(
        || tracing::info_span!(target: crate::telemetry::TARGET, "roost.sandbox"),
    );
    crate::telemetry::tag(&span, run_id);
    span
}

/// Runs claimed runs. Compiled guests are kept per script version.
pub struct Executor {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    profiles: Arc<RunProfiles>,
    oauth: Arc<OAuth>,
    sandbox: Arc<Sandbox>,
    limits: RunLimits,
    connectors: Arc<Connectors>,
    state_quota: StateQuota,
    emit_limits: emitted_events::EmitLimits,
    guests: Mutex<HashMap<(String, i64), (LoadedGuest, ScriptMetadata)>>,
}

impl Executor {
    /// An executor with default `limits` for every run.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        profiles: Arc<RunProfiles>,
        oauth: Arc<OAuth>,
        sandbox: Arc<Sandbox>,
        limits: RunLimits,
        connectors: Arc<Connectors>,
    ) -> Self {
        Self {
            store,
            registry,
            profiles,
            oauth,
            sandbox,
            limits,
            connectors,
            state_quota: StateQuota::default(),
            emit_limits: Default::default(),
            guests: Mutex::default(),
        }
    }

    /// Bounds the events runs emit (the defaults otherwise).
    pub(crate) fn with_emit_limits(mut self, limits: emitted_events::EmitLimits) -> Self {
        self.emit_limits = limits;
        self
    }

    /// Holds every script's state to `quota` (the default otherwise).
    pub fn with_state_quota(mut self, quota: StateQuota) -> Self {
        self.state_quota = quota;
        self
    }

    /// The output cap of runs, per stream.
    pub fn output_cap(&self) -> usize {
        self.limits.max_output_bytes
    }

    /// Runs `run` to its end. Never fails: whatever goes wrong is the run's
    /// outcome.
    /// `settings` are the script's own (fetched once per run by the caller).
    /// `live` shows the run's output, masked, while it runs.
    pub async fn execute(
        &self,
        run: &RunRow,
        settings: Option<&ScriptSettings>,
        live: &LiveOutput,
    ) -> RunFinish {
        let limits = self.limits_for(settings);
        match self.prepare(run, live).await {
            Ok((guest, invocation, egress, masker, services)) => match self
                .sandbox
                .run(&guest, &invocation, &limits, &egress)
                .instrument(sandbox_span(&run.id))
                .await
            {
                Ok(outcome) => {
                    let (status, exit_code, error) = match &outcome.termination {
                        Termination::Exited { code: 0 } => (RunStatus::Succeeded, Some(0), None),
                        Termination::Exited { code } => (
                            RunStatus::Failed,
                            Some(i64::from(*code)),
                            Some(format!("the script exited with status {code}")),
                        ),
                        Termination::Trapped { message } => (
                            RunStatus::Failed,
                            None,
                            Some(format!("the script trapped: {message}")),
                        ),
                        Termination::LimitExceeded {
                            limit: Limit::WallTime,
                            detail,
                        } => (
                            RunStatus::TimedOut,
                            None,
                            Some(format!("stopped: {detail}")),
                        ),
                        Termination::LimitExceeded { limit, detail } => (
                            RunStatus::LimitExceeded,
                            None,
                            Some(format!(
                                "stopped: {} limit exceeded ({detail})",
                                limit.as_str()
                            )),
                        ),
                    };
                    let mut error = error;
                    let notes = services.notes();
                    if status != RunStatus::Succeeded && !notes.is_empty() {
                        let note = notes.join("; ");
                        error = Some(error.map_or(note.clone(), |e| format!("{e}; {note}")));
                    }
                    if !outcome.denied_requests.is_empty() {
                        let denied: Vec<String> = outcome
                            .denied_requests
                            .iter()
                            .map(|d| format!("{} ({})", d.host, d.reason))
                            .collect();
                        let note = format!("outbound requests denied: {}", denied.join("; "));
                        // Hosts a guest chose can spell a credential in a way
                        // masking cannot see: the log only counts them.
                        tracing::warn!(run_id = %run.id, count = denied.len(), "a run's requests were denied; the run's error lists them");
                        error = Some(error.map_or(note.clone(), |e| format!("{e}; {note}")));
                    }
                    // What the run asked roost to write stands only if it
                    // succeeded: a failed attempt's retry writes it again.
                    let effects = if status == RunStatus::Succeeded {
                        services.take_effects()
                    } else {
                        RunEffects::default()
                    };
                    // Nothing the run produced is stored with a credential
                    // value in it.
                    RunFinish {
                        status,
                        exit_code,
                        duration_ms: i64::try_from(outcome.duration.as_millis())
                            .unwrap_or(i64::MAX),
                        error: error.map(|e| masker.mask_str(&e)),
                        stdout_truncated: outcome.stdout.truncated,
                        stderr_truncated: outcome.stderr.truncated,
                        stdout: masker.mask(&outcome.stdout.bytes, outcome.stdout.truncated),
                        stderr: masker.mask(&outcome.stderr.bytes, outcome.stderr.truncated),
                        output_cap: i64::try_from(limits.max_output_bytes).unwrap_or(i64::MAX),
                        effects,
                    }
                }
                Err(err) => self
                    .failed(masker.mask_str(&format!("roost could not start the script: {err}"))),
            },
            Err(message) => self.failed(message),
        }
    }

    /// The server's defaults, with what the script set at deploy on top.
    fn limits_for(&self, settings: Option<&ScriptSettings>) -> RunLimits {
        let mut limits = self.limits.clone();
        if let Some(settings) = settings {
            let own = settings.limits;
            if let Some(ms) = own.timeout_ms.and_then(|v| u64::try_from(v).ok()) {
                limits.timeout = std::time::Duration::from_millis(ms);
            }
            if let Some(bytes) = own.memory_bytes.and_then(|v| u64::try_from(v).ok()) {
                limits.max_memory_bytes = bytes;
            }
            if let Some(bytes) = own.output_bytes.and_then(|v| usize::try_from(v).ok()) {
                limits.max_output_bytes = bytes;
            }
        }
        limits
    }

    fn failed(&self, error: String) -> RunFinish {
        RunFinish {
            status: RunStatus::Failed,
            exit_code: None,
            duration_ms: 0,
            error: Some(error),
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            output_cap: i64::try_from(self.limits.max_output_bytes).unwrap_or(i64::MAX),
            effects: RunEffects::default(),
        }
    }

    async fn prepare(
        &self,
        run: &RunRow,
        live: &LiveOutput,
    ) -> Result<
        (
            LoadedGuest,
            Invocation,
            EgressPolicy,
            Masker,
            Arc<RunServices>,
        ),
        String,
    > {
        let (guest, metadata) = self.guest(&run.script_id, run.script_version).await?;
        let mut env = self
            .oauth
            .env_for_run(&run.user_id, &self.registry, &metadata.integrations)
            .await
            .map_err(|err| err.to_string())?;
        // Everything in the env so far is a credential value.
        let masker = Masker::new(env.values().map(String::as_str));
        // Host-only integrations keep their credentials out of the sandbox;
        // the masker still knows them, should a provider echo one.
        for definition in metadata
            .integrations
            .iter()
            .filter_map(|id| self.registry.get(id))
        {
            if definition.credential_delivery == CredentialDelivery::Host {
                for spec in &definition.credentials {
                    env.remove(&spec.env_var);
                    if let Some(var) = &spec.refresh_env_var {
                        env.remove(var);
                    }
                }
            }
        }
        // roost refreshes tokens on the host: a refresh token (long-lived,
        // and what a leaked environment would be worth most for) reaches a
        // script only when its metadata asks for it.
        for definition in metadata
            .integrations
            .iter()
            .filter(|id| !metadata.refresh_tokens.contains(id))
            .filter_map(|id| self.registry.get(id))
        {
            for var in definition
                .credentials
                .iter()
                .filter_map(|spec| spec.refresh_env_var.as_ref())
            {
                env.remove(var);
            }
        }
        let given = self.given_credentials(&metadata.integrations, &env);
        self.audit_reads(run, &metadata.integrations, &env).await;
        env.insert("ROOST_RUN_ID".into(), run.id.clone());
        env.insert("ROOST_SCRIPT_ID".into(), run.script_id.clone());
        env.insert(
            "ROOST_SCRIPT_VERSION".into(),
            run.script_version.to_string(),
        );
        env.insert("ROOST_TRIGGER".into(), run.trigger_kind.to_string());
        // Each declared integration: its descriptor for the SDK, its hosts
        // (and the operator's private base URL, if any) for the egress policy.
        let profiles: Vec<_> = metadata
            .integrations
            .iter()
            .filter_map(|id| self.profiles.get(id))
            .collect();
        let mut egress =
            EgressPolicy::allow_hosts(profiles.iter().flat_map(|p| p.hosts.iter().cloned()));
        for profile in &profiles {
            env.insert(profile.descriptor_var.clone(), profile.descriptor.clone());
            for ip in &profile.restricted_ips {
                egress = egress.allow_restricted_ip(*ip);
            }
        }
        let deps = ServiceDeps {
            store: self.store.clone(),
            connectors: self.connectors.clone(),
            credentials: self.oauth.clone(),
            state_quota: self.state_quota,
            emit_limits: self.emit_limits,
        };
        let services = Arc::new(RunServices::new(
            deps,
            run,
            &metadata.integrations,
            &metadata
                .handlers
                .iter()
                .map(|h| h.name.clone())
                .collect::<Vec<_>>(),
            masker.clone(),
            given,
        ));
        let egress = egress.with_host_service(services.clone());
        let trigger = match run.trigger_kind {
            TriggerKind::Schedule => Trigger::Schedule {
                cron: run.trigger_spec.clone(),
                timezone: None,
            },
            TriggerKind::Event => Trigger::Event {
                name: run.trigger_spec.clone(),
            },
            TriggerKind::Manual => Trigger::Manual,
            TriggerKind::Http => Trigger::Http(crate::triggers::http::invoked(&run.trigger_spec)),
            TriggerKind::Mcp => Trigger::Mcp(roost_sandbox::ToolTrigger::default()),
        };
        let invocation = Invocation {
            env,
            handler: run.handler.clone(),
            trigger: Some(trigger),
            payload: run.payload.clone(),
            program_name: Some(run.script_id.clone()),
            output_probe: Some(live.attach(&masker)),
        };
        Ok((guest, invocation, egress, masker, services))
    }

    /// The credentials in `env` by integration, with where each is sent:
    /// what the run can report refused (see `refusals.rs`).
    fn given_credentials(
        &self,
        integrations: &[String],
        env: &std::collections::BTreeMap<String, String>,
    ) -> GivenCredentials {
        let mut given = GivenCredentials::new();
        for id in integrations {
            let (Some(definition), Some(profile)) = (self.registry.get(id), self.profiles.get(id))
            else {
                continue;
            };
            let mut values = Vec::new();
            let mut env_vars = Vec::new();
            for spec in &definition.credentials {
                if let (Some(placement), Some(value)) = (&spec.placement, env.get(&spec.env_var)) {
                    values.push((placement.clone(), value.clone()));
                    env_vars.push((placement.clone(), spec.env_var.clone()));
                }
            }
            if values.is_empty() {
                continue;
            }
            given.insert(
                id.clone(),
                Given {
                    definition: definition.clone(),
                    values: HostCredential { parts: values },
                    env_vars,
                    hosts: EgressPolicy::allow_hosts(profile.hosts.iter().cloned()),
                },
            );
        }
        given
    }

    /// One audit entry per integration whose credentials this run got.
    async fn audit_reads(
        &self,
        run: &RunRow,
        integrations: &[String],
        env: &std::collections::BTreeMap<String, String>,
    ) {
        let entries: Vec<_> = integrations
            .iter()
            .filter_map(|id| {
                let definition = self.registry.get(id)?;
                let vars: Vec<&str> = definition
                    .credentials
                    .iter()
                    .flat_map(|spec| [Some(&spec.env_var), spec.refresh_env_var.as_ref()])
                    .flatten()
                    .filter(|var| env.contains_key(*var))
                    .map(String::as_str)
                    .collect();
                (!vars.is_empty()).then(|| {
                    crate::audit::entry(
                        &run.user_id,
                        crate::audit::action::READ_FOR_RUN,
                        Some(id),
                        Some(&run.id),
                        Some(format!("as {}", vars.join(", "))),
                    )
                })
            })
            .collect();
        crate::audit::record(self.store.as_ref(), &entries).await;
    }

    async fn guest(
        &self,
        script_id: &str,
        version: i64,
    ) -> Result<(LoadedGuest, ScriptMetadata), String> {
        // Versions are immutable: once loaded, a version is served from
        // memory without reading its component from the database again.
        let key = (script_id.to_string(), version);
        if let Some(cached) = self
            .guests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(cached.clone());
        }
        let (component, metadata) = self
            .store
            .version_component(script_id, version)
            .await
            .map_err(|e| format!("loading the script: {e}"))?
            .ok_or_else(|| "the script version no longer exists".to_string())?;
        let metadata: ScriptMetadata = serde_json::from_value(metadata)
            .map_err(|e| format!("the stored script metadata is unreadable: {e}"))?;
        // Compiled artifacts come from the on-disk cache after the first
        // time; loading is still CPU work, so off the async workers.
        let sandbox = self.sandbox.clone();
        let guest = tokio::task::spawn_blocking(move || sandbox.load(&component))
            .await
            .map_err(|e| format!("compiling the script: {e}"))?
            .map_err(|e| format!("compiling the script: {e}"))?;
        let loaded = (guest, metadata);
        self.guests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, loaded.clone());
        Ok(loaded)
    }
}
