//! A real OAuth 2.0 server for tests: the `oauth2-mock-server` npm package
//! (tests/oauth-mock), started on a loopback port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use roost::oauth::OAuthClientConfig;
use serde_json::Value;

use super::TestApp;

/// The OAuth server process; stopped when dropped.
pub struct Provider {
    child: Child,
    pub port: u16,
    pub stats_port: u16,
}

impl Provider {
    pub fn start() -> Self {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oauth-mock");
        assert!(
            dir.join("node_modules/oauth2-mock-server").exists(),
            "the OAuth test server is not installed: run `npm ci --prefix tests/oauth-mock` (the README test command does)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("server.js"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting node (is Node.js installed?)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ports: Vec<u16> = line
            .trim()
            .strip_prefix("ready ")
            .expect("the OAuth server did not start")
            .split(' ')
            .map(|p| p.parse().unwrap())
            .collect();
        Self {
            child,
            port: ports[0],
            stats_port: ports[1],
        }
    }

    pub fn client(&self, client_id: &str) -> OAuthClientConfig {
        OAuthClientConfig {
            client_id: client_id.into(),
            client_secret: Some("test-secret".into()),
            authorization_url: Some(format!("http://127.0.0.1:{}/authorize", self.port)),
            token_url: Some(format!("http://127.0.0.1:{}/token", self.port)),
        }
    }

    pub async fn refreshes(&self) -> u64 {
        let stats: Value = reqwest::get(format!("http://127.0.0.1:{}/", self.stats_port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["refreshes"].as_u64().unwrap()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Follows a setup URL as a browser would: to the provider, which approves
/// at once, back to roost's callback. Panics unless roost reports success.
pub async fn connect(app: &TestApp, setup_url: &str) {
    let location = |response: reqwest::Response| {
        assert!(
            response.status().is_redirection(),
            "expected a redirect, got {}",
            response.status()
        );
        response.headers()["location"].to_str().unwrap().to_string()
    };
    let to_provider = location(app.client.get(setup_url).send().await.unwrap());
    let callback = location(app.client.get(&to_provider).send().await.unwrap());
    let response = app.client.get(&callback).send().await.unwrap();
    let status = response.status().as_u16();
    let page = response.text().await.unwrap();
    assert_eq!(status, 200, "{page}");
}
