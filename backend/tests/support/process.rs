//! `roost serve` as a child process, for tests that kill it for real.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    /// Starts `roost serve` on a free port with the data directory `data_dir`,
    /// the extra flags `extra` and the variables `envs`.
    pub fn start_with(data_dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roost"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("ROOST_DATA_DIR", data_dir)
            .env_remove("ROOST_MASTER_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("starting roost serve");
        let url = super::serve::listening_url(&mut child, None);
        Self { child, url }
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub fn kill_hard(mut self) {
        Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status of the graceful stop.
    pub fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    /// A failed assertion must not leave a server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `roost` binary with `args`, the data directory and `envs`.
pub fn roost(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roost"));
    command
        .args(args)
        .env("ROOST_DATA_DIR", data_dir)
        .env_remove("ROOST_MASTER_KEY");
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A request to a server started here, with `token`; its JSON answer,
/// which must be a success. `Value::Null` sends no body.
#[allow(dead_code)]
pub async fn api(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}
