//! `roost token create|list|revoke`: the caller's API tokens, through the
//! server's API (`/v1/tokens`).

use std::process::ExitCode;

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{ServerArgs, runtime};
use super::state::{call, failed, segment};
use super::table;

#[derive(Debug, clap::Subcommand)]
pub(super) enum TokenCommand {
    /// Make a token and print it (shown only now).
    Create {
        /// A name unique among your tokens (`ci`, `laptop`…).
        name: String,
        /// What it may do: read, deploy, run, events (comma-separated;
        /// default: the scopes of the token you call with).
        #[arg(long, value_delimiter = ',')]
        scope: Vec<String>,
        /// How long it lasts (`12h`, `30d`; default: until revoked).
        #[arg(long)]
        expires: Option<String>,
        /// Print the whole answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List your tokens (never their values), with their last use.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a token by id (`tok_…`): it stops working at once, on every
    /// node, with the dashboard sessions signed in with it.
    Revoke {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub(super) fn execute(command: TokenCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            TokenCommand::Create {
                name,
                scope,
                expires,
                json,
                server,
            } => {
                let mut body = json!({ "name": name });
                if !scope.is_empty() {
                    body["scopes"] = json!(scope);
                }
                if let Some(expires) = expires {
                    body["expires_in"] = json!(expires);
                }
                let made = match call(&server, Method::POST, "/v1/tokens", Some(body)).await? {
                    Ok(made) => made,
                    Err(refusal) => return Ok(failed(refusal)),
                };
                if json {
                    println!("{made:#}");
                } else {
                    println!("{}", made["token"].as_str().unwrap_or_default());
                    eprintln!(
                        "roost: token `{}` ({}) with scopes {}{}; keep it now, roost never shows it again",
                        made["name"].as_str().unwrap_or_default(),
                        made["id"].as_str().unwrap_or_default(),
                        scopes(&made),
                        made["expires_at"]
                            .as_i64()
                            .map(|at| format!(", expiring {} UTC", table::time(Some(at))))
                            .unwrap_or_default(),
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            TokenCommand::List { json, server } => {
                let listed = match call(&server, Method::GET, "/v1/tokens", None).await? {
                    Ok(listed) => listed,
                    Err(refusal) => return Ok(failed(refusal)),
                };
                if json {
                    println!("{listed:#}");
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = listed["tokens"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|token| {
                        vec![
                            token["id"].as_str().unwrap_or_default().to_string(),
                            token["name"].as_str().unwrap_or_default().to_string(),
                            scopes(token),
                            table::time(token["created_at"].as_i64()),
                            table::time(token["expires_at"].as_i64()),
                            table::time(token["last_used_at"].as_i64()),
                        ]
                    })
                    .collect();
                table::print(
                    &["id", "name", "scopes", "created", "expires", "last used"],
                    rows,
                );
                Ok(ExitCode::SUCCESS)
            }
            TokenCommand::Revoke { id, server } => {
                let path = format!("/v1/tokens/{}", segment(&id));
                Ok(match call(&server, Method::DELETE, &path, None).await? {
                    Ok(_) => {
                        eprintln!("roost: token {id} revoked");
                        ExitCode::SUCCESS
                    }
                    Err(refusal) => failed(refusal),
                })
            }
        }
    })
}

/// A token's scopes, `read,run`.
fn scopes(token: &Value) -> String {
    let names: Vec<&str> = token["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    names.join(",")
}
