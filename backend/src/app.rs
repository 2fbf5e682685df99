//! Builds a running server from a configuration: storage, registry, keys,
//! sandbox, router, listener. Tests use it directly with port 0.

use std::sync::Arc;

use anyhow::Context;
use roost_sandbox::{Sandbox, SandboxConfig};
use tokio::net::TcpListener;

use crate::audit::AuditTrail;
use crate::cluster::Cluster;
use crate::config::ServerConfig;
use crate::connectors::{Connectors, TransportPolicy};
use crate::credentials::{CredentialService, MasterKeys};
use crate::data_dir::DataDir;
use crate::deploy::DeployService;
use crate::execute::Executor;
use crate::http::{AppState, Services, router};
use crate::logging::redact_url;
use crate::oauth::OAuth;
use crate::outbox::Outbox;
use crate::queue::{RunHistory, Runner};
use crate::registry::{Registry, RunProfiles};
use crate::scripts::ScriptService;
use crate::setup_link::SetupLinks;
use crate::store;
use crate::triggers::{EventService, JetStreamBus, ManualRuns, Webhooks};

/// How long a node trusts a token it found valid without asking the
/// database again (see `KnownTokens`).
const KNOWN_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// A server bound to its port, ready to serve.
pub struct Application {
    store: Arc<dyn store::Store>,
    runner: Arc<Runner>,
    bus: Option<Arc<JetStreamBus>>,
    oauth: Arc<OAuth>,
    registry: Arc<Registry>,
    listener: TcpListener,
    router: axum::Router,
    port: u16,
    base_url: String,
    /// How long a client may take to send a request's headers.
    header_read_timeout: std::time::Duration,
    /// Keeps users' webhook subscriptions in step with their scripts.
    subscriptions: Arc<crate::subscriptions::Subscriptions>,
    nudges: Option<crate::subscriptions::Nudges>,
    /// Runs as users read them; its followers let go when the server stops.
    runs: RunHistory,
    /// Users and tokens; it hears of revocations made on other nodes.
    accounts: Arc<crate::accounts::Accounts>,
    /// Tells users of failed runs and credentials to reconnect.
    alerts: crate::alerts::Alerts,
    /// How far ahead OAuth tokens are refreshed, and how often it looks.
    refresh_ahead: (std::time::Duration, std::time::Duration),
    /// The trace exporter, with an OTLP endpoint; flushed when the server stops.
    telemetry: Option<crate::telemetry::Telemetry>,
}

/// How soon a webhook subscription that could not be made or removed is
/// tried again.
const SUBSCRIPTION_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

impl Application {
    /// Opens everything and binds the listener.
    pub async fn build(config: ServerConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let store = store::connect(&config.database_url)
            .await
            .context("opening the database")?;
        let registry = Registry::load(config.integrations_dir.as_deref())?;
        registry.persist(store.as_ref()).await?;
        let profiles = RunProfiles::build(&registry, &config.integration_config)?;
        let keys = MasterKeys::load(
            config.master_key.as_deref(),
            config.master_key_old.as_deref(),
            &config.key_file(),
        )?;
        let (nudge, nudges) = crate::subscriptions::channel();
        let credentials = CredentialService::new(store.clone(), keys).with_nudge(nudge.clone());
        let data_dir = DataDir::new(&config.data_dir);
        let sandbox = Sandbox::new(sandbox_config(data_dir.compile_cache()))?;

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let port = listener.local_addr()?.port();
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{port}", config.listen.ip()));
        let registry = Arc::new(registry);
        let links = SetupLinks::new(
            credentials.keys().derive_secret("setup-links"),
            config.setup_link_ttl_secs,
        );
        let oauth = Arc::new(OAuth::new(
            credentials.clone(),
            config.oauth_clients.clone(),
            &base_url,
            config.refresh_window,
            links.clone(),
        ));
        let sandbox = Arc::new(sandbox);
        let connectors = Arc::new(
            Connectors::new(&registry, &profiles, TransportPolicy::default())
                .map_err(|e| anyhow::anyhow!("building integration connectors: {e}"))?,
        );
        let subscriptions = Arc::new(crate::subscriptions::Subscriptions::new(
            registry.clone(),
            connectors.clone(),
            oauth.clone(),
            credentials.clone(),
            &base_url,
        ));
        let executor = Arc::new(
            Executor::new(
                store.clone(),
                registry.clone(),
                Arc::new(profiles),
                oauth.clone(),
                sandbox.clone(),
                config.run_limits.clone(),
                connectors.clone(),
            )
            .with_state_quota(config.abuse.state_quota())
            .with_emit_limits(config.abuse.emit_limits()),
        );
        let runner = Arc::new(Runner::new(
            store.clone(),
            executor,
            config.runner.clone(),
            Arc::new(crate::metrics::Metrics::default()),
        ));
        let telemetry = match &config.otlp_endpoint {
            Some(endpoint) => Some(crate::telemetry::Telemetry::start(
                endpoint,
                runner.node_id(),
            )?),
            None => None,
        };
        let bus = match &config.nats {
            Some(nats) => Some(Arc::new(JetStreamBus::connect(nats.clone()).await?)),
            None => None,
        };
        let events = EventService::new(store.clone(), runner.clone(), bus.clone());
        let script_changes = crate::scripts::ScriptChanges::default();
        let deploy = Arc::new(DeployService {
            store: store.clone(),
            registry: registry.clone(),
            credentials: credentials.clone(),
            sandbox,
            base_url: base_url.clone(),
            links: links.clone(),
            max_limits: config.max_run_limits.clone(),
            abuse: config.abuse.clone(),
            compiler: config
                .compiler
                .clone()
                .map(|program| crate::deploy::Compiler {
                    program,
                    cache_dir: data_dir.compile_cache(),
                }),
            oauth: oauth.clone(),
            compile_slots: Arc::new(tokio::sync::Semaphore::new(
                config.abuse.max_concurrent_compiles.max(1),
            )),
            nudge: nudge.clone(),
            changes: script_changes.clone(),
        });
        let store_handle = store.clone();
        let guards = Arc::new(crate::abuse::Guards::new(config.abuse.clone()));
        let runs = RunHistory::new(store.clone());
        let accounts = Arc::new(crate::accounts::Accounts::new(
            store.clone(),
            KNOWN_TOKEN_TTL,
        ));
        let alerts = crate::alerts::Alerts::new(
            store.clone(),
            connectors.clone(),
            oauth.clone(),
            deploy.clone(),
            credentials.keys().clone(),
            &base_url,
            config.alert_webhooks_private,
        );
        // Handlers reach the store only through these services.
        let state = AppState::new(Services {
            manual: ManualRuns::new(store.clone(), runner.clone(), guards.limits.queue_limits()),
            replays: crate::triggers::Replays::new(
                store.clone(),
                runner.clone(),
                guards.limits.queue_limits(),
            ),
            runs: runs.clone(),
            scripts: ScriptService::new(store.clone())
                .with_nudge(nudge.clone())
                .with_changes(script_changes.clone()),
            script_changes,
            state: crate::script_state::StateService::new(
                store.clone(),
                config.abuse.state_quota(),
            ),
            audit: AuditTrail::new(store.clone()),
            outbox: Outbox::new(store.clone()),
            cluster: Cluster::new(store.clone(), runner.clone()),
            webhooks: Webhooks::new(
                registry.clone(),
                credentials.clone(),
                events.clone(),
                config.webhook_secrets.clone(),
                &base_url,
                guards.clone(),
            ),
            accounts: accounts.clone(),
            alerts: alerts.clone(),
            http_handlers: crate::triggers::http::HttpHandlers::new(
                store.clone(),
                runner.clone(),
                guards.limits.queue_limits(),
                config.max_run_limits.timeout,
                &base_url,
                credentials.keys().clone(),
                guards.clone(),
            ),
            web: crate::web::WebServices {
                sessions: crate::web::WebSessions::new(store.clone()),
                dashboard: crate::dashboard::Dashboard::new(
                    store.clone(),
                    registry.clone(),
                    deploy.clone(),
                ),
                stats: crate::run_stats::RunStats::new(store.clone()),
                secure_cookies: base_url.starts_with("https://"),
            },
            registry: registry.clone(),
            credentials,
            deploy,
            oauth: oauth.clone(),
            links,
            events,
            guards,
            operator_token_hash: config
                .operator_token
                .as_deref()
                .map(crate::auth::hash_token),
            connectors,
        });
        let router = router(state, config.max_body_bytes, config.body_read_timeout);
        tracing::info!(
            address = %listener.local_addr()?,
            database = %redact_url(&config.database_url),
            data_dir = %config.data_dir.display(),
            "roost server ready"
        );
        Ok(Self {
            store: store_handle,
            runner,
            bus,
            oauth,
            registry,
            listener,
            router,
            port,
            base_url,
            header_read_timeout: config.header_read_timeout,
            subscriptions,
            nudges: Some(nudges),
            runs,
            accounts,
            alerts,
            refresh_ahead: (config.refresh_ahead, config.refresh_ahead_every),
            telemetry,
        })
    }

    /// The OAuth service (runs get their environment through it).
    pub fn oauth(&self) -> Arc<OAuth> {
        self.oauth.clone()
    }

    /// The integration registry.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Base URL used in setup links.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Serves the API and runs the workers until `shutdown` resolves, then
    /// finishes in-flight requests and the runs in hand.
    pub async fn run_until(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let telemetry = self.telemetry.take();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut workers = self.runner.start(stopped.clone());
        if let Some(bus) = &self.bus {
            workers.push(bus.start_consumer(
                self.store.clone(),
                self.runner.clone(),
                stopped.clone(),
            ));
        }
        workers.push(self.subscriptions.clone().start(
            self.nudges.take().expect("an application runs once"),
            stopped.clone(),
            SUBSCRIPTION_RETRY,
        ));
        workers.push(tokio::spawn(
            self.accounts.clone().watch_revocations(stopped.clone()),
        ));
        workers.push(tokio::spawn(self.alerts.clone().watch(stopped.clone())));
        workers.push(tokio::spawn(
            crate::oauth::RefreshAhead {
                oauth: self.oauth.clone(),
                store: self.store.clone(),
                registry: self.registry.clone(),
                node_id: self.runner.node_id().to_string(),
                every: self.refresh_ahead.1,
                ahead: self.refresh_ahead.0,
            }
            .watch(stopped.clone()),
        ));
        let now = crate::store::now_millis();
        workers.push(crate::cluster::report(
            self.store.clone(),
            crate::store::NodeRow {
                id: self.runner.node_id().to_string(),
                address: self.local_addr()?.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at: now,
                heartbeat_at: now,
            },
            stopped.clone(),
        ));
        workers.push(
            crate::triggers::schedule::Scheduler::new(self.store.clone(), self.runner.clone())
                .start(stopped),
        );
        // Streams following runs end first, so the graceful stop does not
        // wait on them.
        let runs = self.runs.clone();
        let shutdown = async move {
            shutdown.await;
            runs.close();
        };
        crate::serve::serve(
            self.listener,
            self.router,
            self.header_read_timeout,
            shutdown,
        )
        .await;
        let _ = stop.send(true);
        for worker in workers {
            let _ = worker.await;
        }
        // Last, so the runs finished above are in the traces sent.
        if let Some(telemetry) = telemetry {
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        }
        Ok(())
    }
}

/// The engine settings of a server with its artifact cache at `cache_dir`
/// (shared with `roost compile`, so the server finds what it compiled).
pub fn sandbox_config(cache_dir: std::path::PathBuf) -> SandboxConfig {
    SandboxConfig {
        cache_dir: Some(cache_dir),
        ..SandboxConfig::default()
    }
}
