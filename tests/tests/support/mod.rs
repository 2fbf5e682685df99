//! Helpers shared by the sandbox tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use roost_sandbox::{
    EgressPolicy, Invocation, LoadedGuest, RunLimits, RunOutcome, Sandbox, SandboxConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig::default()).expect("building the sandbox")
}

pub(crate) fn load(sandbox: &Sandbox, example: &str) -> LoadedGuest {
    sandbox
        .load(&roost_tests::example(example))
        .unwrap_or_else(|err| panic!("loading {example}: {err}"))
}

/// Runs `guest` with no input, the default limits and no egress.
pub(crate) async fn run_plain(sandbox: &Sandbox, guest: &LoadedGuest) -> RunOutcome {
    sandbox
        .run(
            guest,
            &Invocation::default(),
            &RunLimits::default(),
            &EgressPolicy::deny_all(),
        )
        .await
        .expect("the run starts")
}

pub(crate) fn invocation(env: &[(&str, &str)], payload: serde_json::Value) -> Invocation {
    Invocation {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        payload,
        ..Invocation::default()
    }
}

/// A one-route HTTP server on 127.0.0.1 that answers `pong` and counts the
/// connections it accepted, so a test can prove a denied request never left.
pub(crate) struct PongServer {
    pub(crate) port: u16,
    pub(crate) connections: Arc<AtomicUsize>,
}

impl PongServer {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response =
                        "HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong";
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { port, connections }
    }

    pub(crate) fn accepted(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
