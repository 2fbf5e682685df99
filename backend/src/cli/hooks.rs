//! `roost hooks list|rotate|secret SCRIPT`: the URLs of a deployed
//! script's HTTP handlers, and `hmac` handlers' signing secrets, through the
//! server's API.

use std::process::ExitCode;

use rand::RngCore as _;
use reqwest::Method;
use serde_json::Value;

use super::client::{ServerArgs, runtime};
use super::start::script_id;
use super::state::{call, failed, segment};

#[derive(Debug, clap::Subcommand)]
pub(super) enum HooksCommand {
    /// List each HTTP handler (method, path, access, URL) and each
    /// integration webhook URL the script's events arrive by.
    List {
        /// The script's name or id.
        script: String,
        /// Print `{"handlers": […], "webhooks": […]}` as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Give a handler a new URL; the old one stops answering at once.
    Rotate {
        /// The script's name or id.
        script: String,
        /// The handler's name.
        handler: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Set an `hmac` handler's signing secret: a new random one, printed
    /// once (the server never shows it), or yours with `--stdin`.
    Secret {
        /// The script's name or id.
        script: String,
        /// The handler's name.
        handler: String,
        /// Read the secret from standard input instead of making one.
        #[arg(long)]
        stdin: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub(super) fn execute(command: HooksCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            HooksCommand::List {
                script,
                json,
                server,
            } => {
                let script = id(&server, &script).await?;
                let path = format!("/v1/scripts/{}/http", segment(&script));
                let handlers = match call(&server, Method::GET, &path, None).await? {
                    Ok(body) => body["handlers"].as_array().cloned().unwrap_or_default(),
                    Err(refusal) => return Ok(failed(refusal)),
                };
                let path = format!("/v1/scripts/{}/webhooks", segment(&script));
                let webhooks = match call(&server, Method::GET, &path, None).await? {
                    Ok(body) => body["webhooks"].as_array().cloned().unwrap_or_default(),
                    Err(refusal) => return Ok(failed(refusal)),
                };
                if json {
                    let both = serde_json::json!({ "handlers": handlers, "webhooks": webhooks });
                    println!("{both:#}");
                    return Ok(ExitCode::SUCCESS);
                }
                if handlers.is_empty() && webhooks.is_empty() {
                    println!(
                        "this script has no HTTP handlers and takes no integration's webhooks"
                    );
                }
                for handler in &handlers {
                    println!("{}", line(handler));
                }
                for webhook in &webhooks {
                    println!("{}", webhook_line(webhook));
                }
                Ok(ExitCode::SUCCESS)
            }
            HooksCommand::Rotate {
                script,
                handler,
                server,
            } => {
                let script = id(&server, &script).await?;
                let path = format!(
                    "/v1/scripts/{}/http/{}/rotate",
                    segment(&script),
                    segment(&handler)
                );
                let answer = call(&server, Method::POST, &path, None).await?;
                Ok(answer.map_or_else(failed, |body| {
                    println!("{}", line(&body));
                    ExitCode::SUCCESS
                }))
            }
            HooksCommand::Secret {
                script,
                handler,
                stdin,
                server,
            } => {
                let secret = if stdin {
                    let mut read = String::new();
                    std::io::stdin().read_line(&mut read)?;
                    read.trim_end_matches(['\r', '\n']).to_string()
                } else {
                    let mut bytes = [0u8; 32];
                    rand::rngs::OsRng.fill_bytes(&mut bytes);
                    hex::encode(bytes)
                };
                let script = id(&server, &script).await?;
                let path = format!(
                    "/v1/scripts/{}/http/{}/secret",
                    segment(&script),
                    segment(&handler)
                );
                let body = serde_json::json!({ "secret": secret });
                let answer = call(&server, Method::PUT, &path, Some(body)).await?;
                Ok(answer.map_or_else(failed, |_| {
                    if stdin {
                        eprintln!("roost: signing secret set");
                    } else {
                        // The only time this secret is shown: give it to the caller.
                        println!("{secret}");
                        eprintln!(
                            "roost: signing secret set; keep it now, roost never shows it again"
                        );
                    }
                    ExitCode::SUCCESS
                }))
            }
        }
    })
}

async fn id(server: &ServerArgs, script: &str) -> anyhow::Result<String> {
    let base = server.server.trim_end_matches('/').to_string();
    script_id(&reqwest::Client::new(), server, &base, script).await
}

/// `handler  METHOD /path  access  URL`.
fn line(handler: &Value) -> String {
    let field = |name: &str| handler[name].as_str().unwrap_or("?").to_string();
    format!(
        "{}  {} {}  {}  {}",
        field("handler"),
        field("method"),
        field("path"),
        field("access"),
        field("url")
    )
}

/// `webhook shopify  shopify.orders.create,…  URL`.
fn webhook_line(webhook: &Value) -> String {
    let events: Vec<&str> = webhook["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    format!(
        "webhook {}  {}  {}",
        webhook["integration"].as_str().unwrap_or("?"),
        events.join(","),
        webhook["url"].as_str().unwrap_or("?")
    )
}
