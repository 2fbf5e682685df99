//! Remote commands over the server's API: `roost scripts …`, `roost events
//! send`, `roost credentials …` and `roost connect`. Tables by default,
//! `--json` for the server's answer; a refusal is one line with its code.

use std::process::ExitCode;

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{ServerArgs, runtime};
use super::start::script_id;
use super::state::{call, failed, segment};
use super::table;

#[derive(Debug, clap::Subcommand)]
pub(super) enum ScriptsCommand {
    /// List your scripts.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a script and its triggers.
    Show {
        /// The script's name or id.
        script: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List a script's versions, newest first.
    Versions {
        script: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Make an older version current again.
    Rollback {
        script: String,
        /// The version to go back to.
        version: i64,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete a script: its versions, triggers and state; its pending runs
    /// are cancelled.
    Delete {
        script: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum EventsCommand {
    /// Post an event: each `#[on_event(TYPE)]` handler of your scripts runs.
    Send {
        /// The event type (`order.created`).
        event_type: String,
        /// The payload, as JSON.
        #[arg(long, default_value = "{}")]
        payload: String,
        /// An idempotency key: the same id again within 24 h runs nothing.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum CredentialsCommand {
    /// List what is connected (never values).
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Store an API key, token or password, read from standard input, one
    /// line per key (never from the command line, which shells remember).
    Set {
        integration: String,
        /// The credential keys, in the order their lines come (`api_key`).
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Disconnect an integration: its stored credential is deleted.
    Delete {
        integration: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, clap::Args)]
pub(super) struct ConnectArgs {
    /// The integration to connect (`gmail`, `slack`…).
    integration: String,
    /// Only print the link; do not try to open a browser.
    #[arg(long)]
    no_open: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// One request; the answer, or the refusal printed (exit 1).
async fn ask(
    server: &ServerArgs,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Result<Value, ExitCode>> {
    Ok(call(server, method, path, body).await?.map_err(failed))
}

/// Prints `answer` as JSON when asked, else runs `human`.
fn show(json: bool, answer: &Value, human: impl FnOnce(&Value)) -> ExitCode {
    if json {
        println!("{answer:#}");
    } else {
        human(answer);
    }
    ExitCode::SUCCESS
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub(super) fn scripts(command: ScriptsCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let id = |server: &ServerArgs, script: &str| {
            let (server, script) = (server.clone(), script.to_string());
            async move {
                let base = server.server.trim_end_matches('/').to_string();
                script_id(&reqwest::Client::new(), &server, &base, &script).await
            }
        };
        Ok(match command {
            ScriptsCommand::List { json, server } => {
                match ask(&server, Method::GET, "/v1/scripts", None).await? {
                    Err(code) => code,
                    Ok(answer) => show(json, &answer, |answer| {
                        let rows = each(&answer["scripts"])
                            .map(|s| {
                                vec![
                                    text(&s["id"]),
                                    text(&s["name"]),
                                    text(&s["current_version"]),
                                    table::time(s["updated_at"].as_i64()),
                                ]
                            })
                            .collect();
                        table::print(&["id", "name", "version", "updated"], rows);
                    }),
                }
            }
            ScriptsCommand::Show {
                script,
                json,
                server,
            } => {
                let path = format!("/v1/scripts/{}", segment(&id(&server, &script).await?));
                match ask(&server, Method::GET, &path, None).await? {
                    Err(code) => code,
                    Ok(answer) => show(json, &answer, |answer| {
                        let s = &answer["script"];
                        println!(
                            "{} ({}), version {}",
                            text(&s["name"]),
                            text(&s["id"]),
                            text(&s["current_version"])
                        );
                        let rows = each(&answer["triggers"])
                            .map(|t| vec![text(&t["handler"]), text(&t["kind"]), text(&t["spec"])])
                            .collect();
                        table::print(&["handler", "trigger", "spec"], rows);
                    }),
                }
            }
            ScriptsCommand::Versions {
                script,
                json,
                server,
            } => {
                let path = format!(
                    "/v1/scripts/{}/versions",
                    segment(&id(&server, &script).await?)
                );
                match ask(&server, Method::GET, &path, None).await? {
                    Err(code) => code,
                    Ok(answer) => show(json, &answer, |answer| {
                        let rows = each(&answer["versions"])
                            .map(|v| {
                                vec![
                                    text(&v["version"]),
                                    table::time(v["created_at"].as_i64()),
                                    text(&v["content_hash"]).chars().take(12).collect(),
                                ]
                            })
                            .collect();
                        table::print(&["version", "created", "content"], rows);
                    }),
                }
            }
            ScriptsCommand::Rollback {
                script,
                version,
                server,
            } => {
                let path = format!(
                    "/v1/scripts/{}/rollback",
                    segment(&id(&server, &script).await?)
                );
                let body = json!({ "version": version });
                match ask(&server, Method::POST, &path, Some(body)).await? {
                    Err(code) => code,
                    Ok(answer) => {
                        eprintln!(
                            "roost: `{}` runs version {} now",
                            text(&answer["script"]["name"]),
                            text(&answer["script"]["current_version"])
                        );
                        ExitCode::SUCCESS
                    }
                }
            }
            ScriptsCommand::Delete { script, server } => {
                let path = format!("/v1/scripts/{}", segment(&id(&server, &script).await?));
                match ask(&server, Method::DELETE, &path, None).await? {
                    Err(code) => code,
                    Ok(_) => {
                        eprintln!("roost: deleted `{script}`");
                        ExitCode::SUCCESS
                    }
                }
            }
        })
    })
}

pub(super) fn events(command: EventsCommand) -> anyhow::Result<ExitCode> {
    let EventsCommand::Send {
        event_type,
        payload,
        id,
        json,
        server,
    } = command;
    let payload: Value = serde_json::from_str(&payload)
        .with_context(|| format!("--payload is not JSON: {payload}"))?;
    let mut body = json!({ "payload": payload });
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    runtime()?.block_on(async {
        let path = format!("/v1/events/{}", segment(&event_type));
        Ok(match ask(&server, Method::POST, &path, Some(body)).await? {
            Err(code) => code,
            Ok(answer) => show(json, &answer, |answer| {
                let runs: Vec<String> = each(&answer["run_ids"]).map(text).collect();
                let duplicate = if answer["duplicate"] == true {
                    " (seen before: nothing new runs)"
                } else {
                    ""
                };
                println!(
                    "event {}{duplicate}: {}",
                    text(&answer["event_id"]),
                    if runs.is_empty() {
                        "no handler takes it".into()
                    } else {
                        format!("runs {}", runs.join(", "))
                    }
                );
            }),
        })
    })
}

pub(super) fn credentials(command: CredentialsCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        Ok(match command {
            CredentialsCommand::List { json, server } => {
                match ask(&server, Method::GET, "/v1/credentials", None).await? {
                    Err(code) => code,
                    Ok(answer) => show(json, &answer, |answer| {
                        let rows = each(&answer["credentials"])
                            .map(|c| {
                                vec![
                                    text(&c["integration"]),
                                    text(&c["status"]),
                                    table::time(c["updated_at"].as_i64()),
                                ]
                            })
                            .collect();
                        table::print(&["integration", "status", "updated"], rows);
                    }),
                }
            }
            CredentialsCommand::Set {
                integration,
                keys,
                server,
            } => {
                let mut values = serde_json::Map::new();
                for key in &keys {
                    let mut line = String::new();
                    if std::io::stdin().read_line(&mut line)? == 0 {
                        anyhow::bail!("standard input ended before the value of `{key}`");
                    }
                    values.insert(key.clone(), json!(line.trim_end_matches(['\r', '\n'])));
                }
                let path = format!("/v1/credentials/{}", segment(&integration));
                let body = json!({ "values": values });
                match ask(&server, Method::PUT, &path, Some(body)).await? {
                    Err(code) => code,
                    Ok(_) => {
                        eprintln!("roost: {integration} connected ({})", keys.join(", "));
                        ExitCode::SUCCESS
                    }
                }
            }
            CredentialsCommand::Delete {
                integration,
                server,
            } => {
                let path = format!("/v1/credentials/{}", segment(&integration));
                match ask(&server, Method::DELETE, &path, None).await? {
                    Err(code) => code,
                    Ok(_) => {
                        eprintln!("roost: disconnected {integration}");
                        ExitCode::SUCCESS
                    }
                }
            }
        })
    })
}

pub(super) fn connect(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let path = format!("/v1/integrations/{}/setup_link", segment(&args.integration));
        Ok(match ask(&args.server, Method::POST, &path, None).await? {
            Err(code) => code,
            Ok(answer) => {
                let url = text(&answer["setup_url"]);
                println!("{url}");
                if !args.no_open && open_browser(&url) {
                    eprintln!("roost: opened the setup page in your browser");
                } else {
                    eprintln!(
                        "roost: open this link to connect {} (it works once)",
                        args.integration
                    );
                }
                ExitCode::SUCCESS
            }
        })
    })
}

/// Opens `url` in the desktop's browser, where there is one.
fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let has_display = cfg!(target_os = "macos")
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some();
    has_display
        && std::process::Command::new(opener)
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
}

fn each(list: &Value) -> impl Iterator<Item = &Value> {
    list.as_array().into_iter().flatten()
}
