use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::app::Application;
use crate::config::{DEFAULT_MAX_BODY_BYTES, FileConfig, ServerConfig, sqlite_url};

#[derive(Debug, clap::Args)]
pub(super) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ROOST_LISTEN")]
    listen: Option<SocketAddr>,
    /// Database: `sqlite://path` (default: roost.db in the data directory) or `postgres://…`.
    #[arg(long, env = "ROOST_DATABASE_URL")]
    database_url: Option<String>,
    /// Public base URL for setup links (default: http://<listen address>).
    #[arg(long, env = "ROOST_BASE_URL")]
    base_url: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "ROOST_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Directory of extra integration definitions (`*.json`).
    #[arg(long, env = "ROOST_INTEGRATIONS_DIR")]
    integrations_dir: Option<PathBuf>,
    /// Concurrent runs on this node (0: serve the API and queue runs only).
    #[arg(long, env = "ROOST_WORKERS")]
    workers: Option<usize>,
    /// Most of this node's workers one user's runs take at once (default:
    /// half the workers, at least one).
    #[arg(long, env = "ROOST_MAX_RUNNING_PER_USER")]
    max_running_per_user: Option<usize>,
    /// Wall-clock limit of each run, in milliseconds.
    #[arg(long, env = "ROOST_RUN_TIMEOUT_MS")]
    run_timeout_ms: Option<u64>,
    /// A running run whose worker has not reported for this long is re-queued.
    #[arg(long, env = "ROOST_RUN_STALE_SECS")]
    run_stale_secs: Option<u64>,
    /// What happens to a run whose worker died: `requeue` (default) or `fail`.
    #[arg(long, env = "ROOST_ORPHAN_RUNS", value_parser = ["requeue", "fail"])]
    orphan_runs: Option<String>,
    /// NATS server with JetStream (`nats://host:4222`): makes this node part of
    /// a cluster whose events travel over a JetStream stream.
    #[arg(long, env = "ROOST_NATS_URL")]
    nats_url: Option<String>,
    /// JetStream stream of the cluster's events (default ROOST_EVENTS).
    #[arg(long, env = "ROOST_NATS_STREAM")]
    nats_stream: Option<String>,
    /// First token of the event subjects (default `roost`: `roost.events.<user>.<type>`).
    #[arg(long, env = "ROOST_NATS_SUBJECT_PREFIX")]
    nats_subject_prefix: Option<String>,
    /// OpenTelemetry collector (OTLP over HTTP, e.g. `http://localhost:4318`)
    /// to send runs' traces to; none are recorded without it.
    #[arg(long, env = "ROOST_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// TOML config file (default: roost.toml in the data directory, if present).
    #[arg(long, env = "ROOST_CONFIG")]
    config: Option<PathBuf>,
}

/// Flags and env first, then the config file, then defaults.
pub(super) fn resolve(args: ServeArgs, data_dir: &Path) -> anyhow::Result<ServerConfig> {
    let default_file = data_dir.join("roost.toml");
    let file = match &args.config {
        Some(path) => FileConfig::read(path)?,
        None if default_file.exists() => FileConfig::read(&default_file)?,
        None => FileConfig::default(),
    };
    let mut config = ServerConfig::for_data_dir(data_dir);
    if let Some(listen) = args.listen.or(file.listen) {
        config.listen = listen;
    }
    config.database_url = args
        .database_url
        .or(file.database_url)
        .unwrap_or_else(|| sqlite_url(data_dir));
    config.base_url = args.base_url.or(file.base_url);
    config.max_body_bytes = args
        .max_body_bytes
        .or(file.max_body_bytes)
        .unwrap_or(DEFAULT_MAX_BODY_BYTES);
    config.integrations_dir = args.integrations_dir.or(file.integrations_dir);
    if let Some(workers) = args.workers.or(file.workers) {
        config.runner.workers = workers;
    }
    if let Some(cap) = args.max_running_per_user.or(file.max_running_per_user) {
        config.runner.per_user_workers = Some(cap.max(1));
    }
    if let Some(cap) = file.max_waits_per_user {
        config.runner.per_user_waits = cap.max(1);
    }
    if let Some(cap) = file.max_http_runs {
        config.runner.http_runs = cap.max(1);
    }
    if let Some(policy) = args.orphan_runs.or(file.orphan_runs) {
        config.runner.requeue_orphans = match policy.as_str() {
            "requeue" => true,
            "fail" => false,
            other => anyhow::bail!("orphan_runs is `requeue` or `fail`, not `{other}`"),
        };
    }
    if let Some(ms) = args.run_timeout_ms.or(file.run_timeout_ms) {
        config.run_limits.timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(secs) = args.run_stale_secs.or(file.run_stale_secs) {
        config.runner.stale_after = std::time::Duration::from_secs(secs.max(1));
        config.runner.heartbeat =
            (config.runner.stale_after / 4).max(std::time::Duration::from_millis(200));
    }
    if let Some(secs) = std::env::var("ROOST_REFRESH_WINDOW_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .or(file.refresh_window_secs)
    {
        config.refresh_window = std::time::Duration::from_secs(secs);
    }
    // Client ids for every OAuth integration the server may know: the
    // built-in ones and those in an extra definitions directory.
    let registry = crate::registry::Registry::load(config.integrations_dir.as_deref())?;
    config.oauth_clients = crate::oauth::from_env(registry.ids().into_iter(), file.oauth, |name| {
        std::env::var(name).ok()
    });
    if let Some(url) = args.nats_url.or(file.nats_url) {
        let mut nats = crate::triggers::NatsConfig::new(url);
        if let Some(stream) = args.nats_stream.or(file.nats_stream) {
            nats.stream = stream;
        }
        if let Some(prefix) = args.nats_subject_prefix.or(file.nats_subject_prefix) {
            nats.subject_prefix = prefix;
        }
        nats.validate().map_err(|e| anyhow::anyhow!(e))?;
        config.nats = Some(nats);
    }
    config.otlp_endpoint = args
        .otlp_endpoint
        .or(file.otlp_endpoint)
        .filter(|v| !v.is_empty());
    let abuse = &mut config.abuse;
    if let Some(v) = file.api_requests_per_sec {
        abuse.api_requests_per_sec = v;
    }
    if let Some(v) = file.api_burst {
        abuse.api_burst = v;
    }
    if let Some(v) = file.events_per_minute {
        abuse.events_per_minute = v;
    }
    if let Some(v) = file.http_requests_per_minute {
        abuse.http_requests_per_minute = v;
    }
    if let Some(v) = file.max_scripts_per_user {
        abuse.max_scripts_per_user = v;
    }
    if let Some(v) = file.max_versions_per_script {
        abuse.max_versions_per_script = v.max(1);
    }
    if let Some(v) = file.max_component_bytes {
        abuse.max_component_bytes = v;
    }
    if let Some(v) = file.max_queued_runs_per_user {
        abuse.max_queued_runs_per_user = v;
    }
    if let Some(v) = file.max_payload_bytes {
        abuse.max_payload_bytes = v.max(1);
    }
    if let Some(v) = file.max_mcp_sessions_per_user {
        abuse.max_mcp_sessions_per_user = v.max(1);
    }
    if let Some(v) = file.max_event_chain {
        abuse.max_event_chain = v.max(1);
    }
    if let Some(v) = file.max_stored_payload_bytes_per_user {
        abuse.max_stored_payload_bytes_per_user = v;
    }
    if let Some(v) = file.compile_timeout_ms {
        abuse.compile_timeout = std::time::Duration::from_millis(v.max(1));
    }
    if let Some(v) = file.max_concurrent_compiles {
        abuse.max_concurrent_compiles = v.max(1);
    }
    if let Some(v) = file.failed_auths_per_minute {
        abuse.failed_auths_per_minute = v.max(1);
    }
    if let Some(v) = file.max_state_keys_per_script {
        abuse.max_state_keys_per_script = v.max(1);
    }
    if let Some(v) = file.max_state_bytes_per_script {
        abuse.max_state_bytes_per_script = v.max(1);
    }
    if let Some(v) = file.header_read_timeout_secs {
        config.header_read_timeout = std::time::Duration::from_secs(v.max(1));
    }
    if let Some(v) = file.body_read_timeout_secs {
        config.body_read_timeout = std::time::Duration::from_secs(v.max(1));
    }
    // Deploys compile in a child `roost compile`, which can be killed.
    config.compiler = std::env::current_exe().ok();
    config.integration_config = file
        .integration_config
        .into_iter()
        .map(|(id, table)| {
            let settings = serde_json::to_value(table)
                .map_err(|e| anyhow::anyhow!("integration_config.{id}: {e}"))?;
            match settings {
                serde_json::Value::Object(map) => Ok((id, map)),
                _ => anyhow::bail!("integration_config.{id} must be a table"),
            }
        })
        .collect::<anyhow::Result<_>>()?;
    config.webhook_secrets = webhook_secrets(std::env::vars());
    config.operator_token = std::env::var("ROOST_OPERATOR_TOKEN")
        .ok()
        .or(file.operator_token)
        .filter(|v| !v.is_empty());
    config.alert_webhooks_private = file.alert_webhooks_private.unwrap_or(false);
    config.master_key = std::env::var("ROOST_MASTER_KEY")
        .ok()
        .filter(|v| !v.is_empty());
    config.master_key_old = std::env::var("ROOST_MASTER_KEY_OLD")
        .ok()
        .filter(|v| !v.is_empty());
    Ok(config)
}

/// `ROOST_WEBHOOK_SECRET_<ID>` (the id upper-cased, `-` as `_`) by
/// integration id, and `ROOST_SLACK_SIGNING_SECRET`, the name Slack's came
/// under first.
fn webhook_secrets(
    vars: impl Iterator<Item = (String, String)>,
) -> std::collections::BTreeMap<String, String> {
    let mut secrets = std::collections::BTreeMap::new();
    let mut slack_legacy = None;
    for (name, value) in vars.filter(|(_, value)| !value.is_empty()) {
        if let Some(id) = name.strip_prefix("ROOST_WEBHOOK_SECRET_") {
            secrets.insert(id.to_ascii_lowercase(), value);
        } else if name == "ROOST_SLACK_SIGNING_SECRET" {
            slack_legacy = Some(value);
        }
    }
    if let Some(value) = slack_legacy {
        secrets.entry("slack".into()).or_insert(value);
    }
    secrets
}

pub(super) fn execute(args: ServeArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let config = resolve(args, data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let app = Application::build(config).await?;
        // Register the handlers before announcing the address, so a signal
        // sent right after start-up is a clean stop, not a kill.
        let shutdown = shutdown_signal()?;
        eprintln!(
            "roost: listening on http://{} (setup links use {}; Ctrl-C to stop)",
            app.local_addr()?,
            app.base_url()
        );
        app.run_until(shutdown).await
    })?;
    eprintln!("roost: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM; the handlers are installed when this returns.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
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
        tracing::info!("shutdown requested; finishing in-flight requests and runs");
    })
}
