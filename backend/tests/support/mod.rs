//! Spawns the real server on a random port, on SQLite or on PostgreSQL.
#![allow(dead_code, unreachable_pub)]

pub mod dashboard;
pub mod hook_providers;
pub mod oauth_provider;
pub mod process;
pub mod scripted;
pub mod sdk_app;
pub mod serve;
pub mod stand_in;

use std::sync::Arc;

use base64::Engine as _;
use roost::app::Application;
use roost::auth::{hash_token, new_token};
use roost::config::{ServerConfig, sqlite_url};
use roost::store::Store;
use serde_json::{Value, json};

/// Runs a scenario against SQLite and, when `ROOST_TEST_POSTGRES_URL` is set,
/// against a fresh PostgreSQL database.
#[macro_export]
macro_rules! on_both_stores {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                super::$scenario(super::support::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                if super::support::postgres_base_url().is_none() {
                    eprintln!("skipped: set ROOST_TEST_POSTGRES_URL to run the PostgreSQL variant");
                    return;
                }
                super::$scenario(super::support::Backend::Postgres).await
            }
        }
    };
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn postgres_base_url() -> Option<String> {
    std::env::var("ROOST_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A fresh, empty database for one test.
pub async fn database_url(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => sqlite_url(dir),
        Backend::Postgres => {
            use sqlx::Connection;
            let base = postgres_base_url().expect("ROOST_TEST_POSTGRES_URL");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let name = format!(
                "roost_test_{now}_{}",
                hex::encode(rand::random::<[u8; 6]>())
            );
            let mut admin = sqlx::PgConnection::connect(&base)
                .await
                .expect("connecting to PostgreSQL");
            drop_stale_databases(&mut admin, now).await;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap();
            let (prefix, _) = base
                .rsplit_once('/')
                .expect("a database URL ends in /dbname");
            format!("{prefix}/{name}")
        }
    }
}

/// Test databases are not dropped by the test that made them (it may still
/// be serving); each new one sweeps those more than an hour old instead.
async fn drop_stale_databases(admin: &mut sqlx::PgConnection, now: u64) {
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'roost_test_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for (name,) in names {
        let created: Option<u64> = name
            .strip_prefix("roost_test_")
            .and_then(|rest| rest.split('_').next()?.parse().ok());
        if created.is_none_or(|at| at + 3600 < now) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *admin)
                .await;
        }
    }
}

pub async fn open_store(backend: Backend, dir: &std::path::Path) -> Arc<dyn Store> {
    roost::store::connect(&database_url(backend, dir).await)
        .await
        .unwrap()
}

pub struct TestApp {
    pub base: String,
    pub oauth: Arc<roost::oauth::OAuth>,
    pub registry: Arc<roost::registry::Registry>,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub config: ServerConfig,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::for_data_dir(dir.path());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.database_url = database_url(backend, dir.path()).await;
        tweak(&mut config);
        let store = roost::store::connect(&config.database_url).await.unwrap();
        let app = Application::build(config.clone())
            .await
            .expect("building the app");
        let base = format!("http://127.0.0.1:{}", app.port());
        let (oauth, registry) = (app.oauth(), app.registry());
        tokio::spawn(app.run_until(std::future::pending()));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            base,
            oauth,
            registry,
            client,
            store,
            config,
            dir,
        }
    }

    /// Starts another node on the same database and data directory (the
    /// scale-out shape); returns its base URL. It runs until the test ends.
    pub async fn another_node(&self) -> String {
        let app = Application::build(self.config.clone())
            .await
            .expect("building the second node");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until(std::future::pending()));
        base
    }

    /// The id of the user owning `token`.
    pub async fn user_id(&self, token: &str) -> String {
        self.store
            .user_by_token_hash(&hash_token(token))
            .await
            .unwrap()
            .unwrap()
            .id
    }

    /// Creates a user and returns its token.
    pub async fn user(&self, name: &str) -> String {
        let token = new_token();
        self.store
            .create_user(name, &hash_token(&token))
            .await
            .unwrap();
        token
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        decode(response).await
    }

    pub async fn get_text(&self, token: &str, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        decode(response).await
    }

    pub async fn deploy(&self, token: &str, name: &str, component: &[u8]) -> (u16, Value) {
        self.deploy_with(token, json!({ "name": name, "component": b64(component) }))
            .await
    }

    /// Deploys the example guest `example` as `name`; its script id.
    pub async fn deploy_example(&self, token: &str, name: &str, example: &str) -> String {
        let (status, body) = self
            .deploy(token, name, &roost_tests::example(example))
            .await;
        assert_eq!(status, 201, "deploying {example}: {body}");
        body["script_id"].as_str().unwrap().to_string()
    }

    pub async fn deploy_with(&self, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, token, "/v1/scripts/deploy", body)
            .await
    }
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// A core module without roost metadata (so a deploy must state it).
pub fn bare_module() -> Vec<u8> {
    wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#).unwrap()
}

/// A script `s` of `user_id` with no triggers, made in the store directly
/// (for tests of the store's side, without a guest); its id.
#[allow(dead_code)]
pub async fn bare_script(store: &dyn Store, user_id: &str) -> String {
    script_named(store, user_id, "s").await
}

/// A script `name` of `user_id` with no triggers, made in the store
/// directly, whatever deploy would say of its name; its id.
#[allow(dead_code)]
pub async fn script_named(store: &dyn Store, user_id: &str, name: &str) -> String {
    store
        .create_script_version(&roost::store::NewScriptVersion {
            user_id: user_id.into(),
            name: name.into(),
            component: b"\0asm".to_vec(),
            content_hash: "ab".repeat(32),
            metadata: serde_json::json!({ "handlers": [], "integrations": [] }),
            triggers: Vec::new(),
            retries: None,
            limits: None,
            caps: Default::default(),
        })
        .await
        .unwrap()
        .script_id
}

/// A successful run's end, as a worker reports it, leaving `messages` in
/// the outbox.
pub fn succeeded_with(messages: Vec<roost::store::MessageRow>) -> roost::store::RunFinish {
    roost::store::RunFinish {
        status: roost::store::RunStatus::Succeeded,
        exit_code: Some(0),
        duration_ms: 1,
        error: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        output_cap: 1024,
        effects: roost::store::RunEffects {
            messages,
            ..Default::default()
        },
    }
}

/// The python of the venv `tests/setup` makes with the official MCP SDK,
/// when it is there.
#[allow(dead_code)]
pub fn mcp_python() -> Option<std::path::PathBuf> {
    let home = std::env::var_os("HOME")?;
    let python = std::path::PathBuf::from(home).join(".cache/roost-mcp-venv/bin/python");
    python.is_file().then_some(python)
}

/// A node on PostgreSQL and two more on its database, with the three base
/// URLs; `None`, having said why, when no PostgreSQL is configured.
#[allow(dead_code)]
pub async fn three_postgres_nodes() -> Option<(TestApp, [String; 3])> {
    if postgres_base_url().is_none() {
        eprintln!("skipped: set ROOST_TEST_POSTGRES_URL to run the three-node case");
        return None;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let nodes = [
        app.base.clone(),
        app.another_node().await,
        app.another_node().await,
    ];
    Some((app, nodes))
}
