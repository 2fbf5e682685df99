//! Server configuration: flags, then `ROOST_*` environment variables (both
//! through clap), then a TOML config file, then defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::oauth::OAuthClientConfig;

/// Default refresh window: tokens expiring sooner are refreshed before a run.
pub const DEFAULT_REFRESH_WINDOW: Duration = Duration::from_secs(300);

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default cap on request bodies (the deploy body carries the component).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The settings a config file may hold (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listen address.
    pub listen: Option<SocketAddr>,
    /// Database URL.
    pub database_url: Option<String>,
    /// Public base URL used in setup links.
    pub base_url: Option<String>,
    /// Request body cap.
    pub max_body_bytes: Option<usize>,
    /// Extra integration definitions.
    pub integrations_dir: Option<PathBuf>,
    /// Refresh OAuth tokens expiring within this many seconds before a run.
    pub refresh_window_secs: Option<u64>,
    /// Concurrent runs on this node.
    pub workers: Option<usize>,
    /// Most of this node's workers one user's runs take at once.
    pub max_running_per_user: Option<usize>,
    /// Most requests one user keeps waiting on runs (`?wait`) at this node.
    pub max_waits_per_user: Option<usize>,
    /// Most MCP sessions one user keeps open at this node.
    pub max_mcp_sessions_per_user: Option<usize>,
    /// Most links in a chain of events scripts emit.
    pub max_event_chain: Option<i64>,
    /// Most HTTP-triggered runs this node runs at once as requests arrive.
    pub max_http_runs: Option<usize>,
    /// Wall-clock limit of each run, in milliseconds.
    pub run_timeout_ms: Option<u64>,
    /// Seconds without a heartbeat after which a running run is re-queued.
    pub run_stale_secs: Option<u64>,
    /// `requeue` or `fail` the runs of a dead worker.
    pub orphan_runs: Option<String>,
    /// NATS server of the cluster's event stream.
    pub nats_url: Option<String>,
    /// JetStream stream name.
    pub nats_stream: Option<String>,
    /// First token of the event subjects.
    pub nats_subject_prefix: Option<String>,
    /// API requests per second per token.
    pub api_requests_per_sec: Option<f64>,
    /// API requests a token may send at once.
    pub api_burst: Option<u32>,
    /// Events per minute per user.
    pub events_per_minute: Option<u32>,
    /// Requests per minute to one user's HTTP handlers.
    pub http_requests_per_minute: Option<u32>,
    /// Scripts per user.
    pub max_scripts_per_user: Option<usize>,
    /// Versions kept per script.
    pub max_versions_per_script: Option<i64>,
    /// Largest component, in bytes.
    pub max_component_bytes: Option<usize>,
    /// Queued runs per user.
    pub max_queued_runs_per_user: Option<i64>,
    /// Largest body of an event or a manual run, in bytes.
    pub max_payload_bytes: Option<usize>,
    /// Bytes of payload one user's runs may keep.
    pub max_stored_payload_bytes_per_user: Option<i64>,
    /// Longest compile at deploy, in milliseconds.
    pub compile_timeout_ms: Option<u64>,
    /// Deploys compiling at once.
    pub max_concurrent_compiles: Option<usize>,
    /// Failed authentications per minute per client address.
    pub failed_auths_per_minute: Option<u32>,
    /// Entries one script's state may hold.
    pub max_state_keys_per_script: Option<i64>,
    /// Bytes of keys and values one script's state may take.
    pub max_state_bytes_per_script: Option<i64>,
    /// The operator's token for `/metrics` and `/v1/cluster`.
    pub operator_token: Option<String>,
    /// Let alert webhooks go to loopback and private addresses.
    pub alert_webhooks_private: Option<bool>,
    /// OTLP/HTTP collector (`http://host:4318`) that runs' traces go to.
    pub otlp_endpoint: Option<String>,
    /// Seconds a client may take to send a request's headers.
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a client may take to send a request's whole body.
    pub body_read_timeout_secs: Option<u64>,
    /// OAuth applications per integration (`[oauth.gmail] client_id = …`).
    #[serde(default)]
    pub oauth: BTreeMap<String, OAuthClientConfig>,
    /// Settings per integration, checked against its `configSchema`
    /// (`[integration_config.gmail] baseUrl = "https://proxy.example"`).
    #[serde(default)]
    pub integration_config: BTreeMap<String, toml::Table>,
}

impl FileConfig {
    /// Reads a TOML config file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }
}

/// The resolved configuration of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind (port 0 picks a free port, as tests do).
    pub listen: SocketAddr,
    /// Data directory (database, key file, compiled cache).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Public base URL for setup links; derived from the bound address when unset.
    pub base_url: Option<String>,
    /// Request body cap.
    pub max_body_bytes: usize,
    /// Extra integration definitions directory.
    pub integrations_dir: Option<PathBuf>,
    /// Master key (base64) from the environment, if any.
    pub master_key: Option<String>,
    /// Older master keys (base64, comma separated) for decryption.
    pub master_key_old: Option<String>,
    /// OAuth applications per integration id.
    pub oauth_clients: BTreeMap<String, OAuthClientConfig>,
    /// Refresh window for OAuth tokens.
    pub refresh_window: Duration,
    /// OAuth tokens expiring within this are refreshed in the background
    /// (connection health); checked every `refresh_ahead_every`.
    pub refresh_ahead: Duration,
    pub refresh_ahead_every: Duration,
    /// Lifetime of signed setup links, in seconds.
    pub setup_link_ttl_secs: i64,
    /// Worker pool.
    pub runner: crate::queue::RunnerConfig,
    /// Default limits of every run.
    pub run_limits: roost_sandbox::RunLimits,
    /// The most a script may ask for at deploy.
    pub max_run_limits: roost_sandbox::RunLimits,
    /// Webhook signing secrets of roost's own apps, by integration id, for
    /// integrations whose definition takes the secret from the server
    /// (Slack's signing secret).
    pub webhook_secrets: BTreeMap<String, String>,
    /// The operator's token for `/metrics` and `/v1/cluster`; without one
    /// those routes are off.
    pub operator_token: Option<String>,
    /// Whether alert webhooks may go to loopback and private addresses
    /// (off: a user could otherwise make roost call its own network).
    pub alert_webhooks_private: bool,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: std::time::Duration,
    /// How long a client may take to send a request's whole body.
    pub body_read_timeout: std::time::Duration,
    /// Settings per integration id (base URL overrides and the like).
    pub integration_config: crate::registry::IntegrationConfig,
    /// The cluster's event stream; `None` on a single node.
    pub nats: Option<crate::triggers::NatsConfig>,
    /// OTLP/HTTP collector that runs' traces are exported to; `None`
    /// (the default) builds no exporter and sends nothing.
    pub otlp_endpoint: Option<String>,
    /// Rate limits and per-user caps.
    pub abuse: crate::abuse::AbuseLimits,
    /// The `roost` executable deploys compile in (`roost compile`), so a
    /// compilation over the time limit can be killed. `None` compiles in
    /// process (the limit then only stops the deploy).
    pub compiler: Option<PathBuf>,
}

impl ServerConfig {
    /// Defaults for a data directory: SQLite inside it, 127.0.0.1:8080.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            database_url: sqlite_url(&data_dir),
            data_dir,
            base_url: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            integrations_dir: None,
            master_key: None,
            master_key_old: None,
            oauth_clients: BTreeMap::new(),
            refresh_window: DEFAULT_REFRESH_WINDOW,
            refresh_ahead: std::time::Duration::from_secs(600),
            refresh_ahead_every: std::time::Duration::from_secs(60),
            setup_link_ttl_secs: crate::setup_link::DEFAULT_TTL_SECS,
            runner: crate::queue::RunnerConfig::default(),
            run_limits: roost_sandbox::RunLimits::default(),
            max_run_limits: roost_sandbox::RunLimits {
                timeout: std::time::Duration::from_secs(15 * 60),
                max_memory_bytes: 512 * 1024 * 1024,
                max_output_bytes: 16 * 1024 * 1024,
                fuel: None,
            },
            webhook_secrets: BTreeMap::new(),
            operator_token: None,
            alert_webhooks_private: false,
            header_read_timeout: std::time::Duration::from_secs(30),
            body_read_timeout: std::time::Duration::from_secs(60),
            integration_config: crate::registry::IntegrationConfig::new(),
            nats: None,
            otlp_endpoint: None,
            abuse: crate::abuse::AbuseLimits::default(),
            compiler: None,
        }
    }

    /// Path of the master key file.
    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join("master.key")
    }
}

/// The SQLite database URL inside a data directory.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("roost.db").display())
}
