//! `roost start`: a manual run of a deployed script on the server. Every
//! request carries an `Idempotency-Key`, so the retries this command makes
//! after a dropped connection or a server error never queue a second run.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use super::client::{ServerArgs, runtime};

/// Tries of one request before giving up (the first and the retries).
const TRIES: u32 = 4;

#[derive(Debug, clap::Args)]
pub(super) struct StartArgs {
    /// The script: its id (`scr_…`) or its name.
    script: String,
    /// The handler to run (needed when the script has several).
    #[arg(long)]
    handler: Option<String>,
    /// The payload, as JSON.
    #[arg(long, default_value = "null")]
    payload: String,
    /// Wait for the run to end, print its output, and exit 1 unless it succeeded.
    #[arg(long)]
    wait: bool,
    /// The request's idempotency key (default: a new random one).
    #[arg(long)]
    idempotency_key: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

impl StartArgs {
    /// A run of `script` that waits for its end (`roost run --remote`).
    pub(super) fn waiting(
        script: String,
        handler: Option<String>,
        payload: Value,
        server: ServerArgs,
    ) -> Self {
        Self {
            script,
            handler,
            payload: payload.to_string(),
            wait: true,
            idempotency_key: None,
            server,
        }
    }
}

pub(super) fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let payload: Value = serde_json::from_str(&args.payload)
        .with_context(|| format!("--payload is not JSON: {}", args.payload))?;
    let key = args
        .idempotency_key
        .clone()
        .unwrap_or_else(|| format!("cli-{}", hex::encode(rand::random::<[u8; 16]>())));
    runtime()?.block_on(async {
        let client = reqwest::Client::new();
        let base = args.server.server.trim_end_matches('/').to_string();
        let script = script_id(&client, &args.server, &base, &args.script).await?;
        let mut body = json!({ "payload": payload });
        if let Some(handler) = &args.handler {
            body["handler"] = json!(handler);
        }
        let url = format!(
            "{base}/v1/scripts/{script}/run{}",
            if args.wait {
                "?wait=true&timeout=600"
            } else {
                ""
            }
        );
        let (status, reply) = send_with_retries(&client, &args.server, &url, &key, &body).await?;
        if !status.is_success() {
            eprintln!(
                "roost: the run was refused ({status}): {} ({})",
                reply["error"]["message"].as_str().unwrap_or("no details"),
                reply["error"]["code"].as_str().unwrap_or("no code")
            );
            return Ok(ExitCode::from(1));
        }
        let run = reply["run_id"].as_str().unwrap_or("?");
        let state = reply["status"].as_str().unwrap_or("?");
        if !args.wait {
            println!("run {run}: {state}");
            return Ok(ExitCode::SUCCESS);
        }
        print!("{}", reply["stdout"].as_str().unwrap_or_default());
        eprint!("{}", reply["stderr"].as_str().unwrap_or_default());
        match reply["run"]["error"].as_str() {
            Some(error) => println!("run {run}: {state}: {error}"),
            None => println!("run {run}: {state}"),
        }
        Ok(if state == "succeeded" {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// Sends the run request, again with the same key after a failure that
/// may have lost the answer (no connection, a timeout, a 5xx).
pub(super) async fn send_with_retries(
    client: &reqwest::Client,
    server: &ServerArgs,
    url: &str,
    key: &str,
    body: &Value,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let mut wait = Duration::from_millis(250);
    for try_number in 1..=TRIES {
        let sent = client
            .post(url)
            .bearer_auth(&server.token)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await;
        let last = try_number == TRIES;
        match sent {
            Ok(response) if !response.status().is_server_error() || last => {
                let status = response.status();
                return Ok((status, response.json().await.unwrap_or(Value::Null)));
            }
            Err(err) if last => {
                return Err(err).with_context(|| format!("connecting to {}", server.server));
            }
            Ok(response) => eprintln!(
                "roost: the server answered {}; trying again with the same idempotency key",
                response.status()
            ),
            Err(err) => eprintln!("roost: {err}; trying again with the same idempotency key"),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    unreachable!("the last try returns")
}

/// The id of the user's script named `script` (or `script` itself, an id).
pub(super) async fn script_id(
    client: &reqwest::Client,
    server: &ServerArgs,
    base: &str,
    script: &str,
) -> anyhow::Result<String> {
    if script.starts_with("scr_") {
        return Ok(script.to_string());
    }
    let response = client
        .get(format!("{base}/v1/scripts"))
        .bearer_auth(&server.token)
        .send()
        .await
        .with_context(|| format!("connecting to {}", server.server))?;
    let status = response.status();
    let listed: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!(
            "listing scripts failed ({status}): {}",
            listed["error"]["message"].as_str().unwrap_or("no details")
        );
    }
    listed["scripts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == script)
        .and_then(|s| s["id"].as_str())
        .map(str::to_string)
        .with_context(|| format!("you have no script named `{script}` (see GET /v1/scripts)"))
}
