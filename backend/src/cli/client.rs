//! Commands that talk to a running server: `deploy`, `integrations`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub(super) struct ServerArgs {
    /// roost server URL.
    #[arg(long, env = "ROOST_SERVER", default_value = "http://127.0.0.1:8080")]
    pub(super) server: String,
    /// API token (from `roost user create`).
    #[arg(long, env = "ROOST_TOKEN", hide_env_values = true)]
    pub(super) token: String,
}

#[derive(Debug, clap::Args)]
pub(super) struct DeployArgs {
    /// The component to deploy.
    component: PathBuf,
    /// Script name (default: the file name without extension).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum IntegrationsCommand {
    /// List the integrations the server knows.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print an integration's docs (markdown).
    Docs {
        /// Integration id(s), comma separated.
        names: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub(super) fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("reading {}", args.component.display()))?;
    let name = match args.name {
        Some(name) => name,
        None => args
            .component
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .context("the file has no name")?,
    };
    let body = json!({ "name": name, "component": base64::engine::general_purpose::STANDARD.encode(&bytes) });
    runtime()?.block_on(async {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/v1/scripts/deploy",
                args.server.server.trim_end_matches('/')
            ))
            .bearer_auth(&args.server.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("connecting to {}", args.server.server))?;
        let status = response.status();
        let reply: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            println!(
                "deployed `{name}`: script {} version {}",
                reply["script_id"].as_str().unwrap_or("?"),
                reply["version"]
            );
            for notice in reply["notices"].as_array().into_iter().flatten() {
                eprintln!("roost: note: {}", notice.as_str().unwrap_or_default());
            }
            return Ok(ExitCode::SUCCESS);
        }
        let error = &reply["error"];
        eprintln!(
            "roost: deploy refused ({status}): {}",
            error["message"].as_str().unwrap_or("no details")
        );
        if let Some(missing) = error["details"]["missing"].as_array() {
            for link in missing {
                println!(
                    "connect {}: {}",
                    link["integration"].as_str().unwrap_or("?"),
                    link["setup_url"].as_str().unwrap_or("?")
                );
            }
        }
        if let Some(known) = error["details"]["known"].as_array() {
            let known: Vec<&str> = known.iter().filter_map(Value::as_str).collect();
            eprintln!("roost: known integrations: {}", known.join(", "));
        }
        Ok(ExitCode::from(1))
    })
}

pub(super) fn integrations(command: IntegrationsCommand) -> anyhow::Result<ExitCode> {
    let (server, path) = match command {
        IntegrationsCommand::List { server } => (server, "/v1/integrations/docs".to_string()),
        IntegrationsCommand::Docs { names, server } => {
            (server, format!("/v1/integrations/docs?names={names}"))
        }
    };
    runtime()?.block_on(print_text(&server, &path))
}

/// GETs a text resource and prints it; exit 1 with the error otherwise.
async fn print_text(server: &ServerArgs, path: &str) -> anyhow::Result<ExitCode> {
    let (status, text) = get(server, path).await?;
    if status.is_success() {
        print!("{text}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("roost: {status}: {text}");
        Ok(ExitCode::from(1))
    }
}

#[derive(Debug, clap::Args)]
pub(super) struct RunsArgs {
    /// Only this script's runs.
    #[arg(long)]
    script: Option<String>,
    /// Only runs in this status (queued, running, succeeded, failed, timed_out, limit_exceeded, cancelled).
    #[arg(long)]
    status: Option<String>,
    /// How many (fetched page by page).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Args)]
pub(super) struct MessagesArgs {
    /// Only messages left by this script.
    #[arg(long)]
    script: Option<String>,
    /// How many (fetched page by page).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Args)]
pub(super) struct LogsArgs {
    /// The run id (from `roost runs`).
    run_id: String,
    #[command(flatten)]
    server: ServerArgs,
}

async fn get(server: &ServerArgs, path: &str) -> anyhow::Result<(reqwest::StatusCode, String)> {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.server.trim_end_matches('/')))
        .bearer_auth(&server.token)
        .send()
        .await
        .with_context(|| format!("connecting to {}", server.server))?;
    let status = response.status();
    Ok((status, response.text().await?))
}

/// Up to `limit` items of a newest-first listing at `path` (which has a
/// query), following the server's `next_cursor` from page to page.
async fn listing(
    server: &ServerArgs,
    path: &str,
    field: &str,
    limit: usize,
) -> anyhow::Result<Result<Vec<Value>, String>> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    while items.len() < limit {
        let page_size = (limit - items.len()).min(200);
        let mut query = format!("{path}&limit={page_size}");
        if let Some(cursor) = &cursor {
            query.push_str(&format!("&cursor={cursor}"));
        }
        let (status, text) = get(server, &query).await?;
        if !status.is_success() {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().unwrap_or(&text);
            return Ok(Err(format!("{status}: {message}")));
        }
        let mut body: Value = serde_json::from_str(&text)?;
        if let Value::Array(page) = body[field].take() {
            items.extend(page);
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    Ok(Ok(items))
}

pub(super) fn runs(args: RunsArgs) -> anyhow::Result<ExitCode> {
    let mut query = "/v1/runs?".to_string();
    if let Some(script) = &args.script {
        query.push_str(&format!("&script_id={script}"));
    }
    if let Some(status) = &args.status {
        query.push_str(&format!("&status={status}"));
    }
    runtime()?.block_on(async {
        let runs = match listing(&args.server, &query, "runs", args.limit as usize).await? {
            Ok(runs) => runs,
            Err(error) => {
                eprintln!("roost: {error}");
                return Ok(ExitCode::from(1));
            }
        };
        println!(
            "{:<30} {:<30} {:>3} {:<15} {:>9}  error",
            "run", "script", "v", "status", "ms"
        );
        for run in &runs {
            println!(
                "{:<30} {:<30} {:>3} {:<15} {:>9}  {}",
                run["id"].as_str().unwrap_or("?"),
                run["script_id"].as_str().unwrap_or("?"),
                run["script_version"],
                run["status"].as_str().unwrap_or("?"),
                run["duration_ms"]
                    .as_i64()
                    .map(|ms| ms.to_string())
                    .unwrap_or_default(),
                run["error"].as_str().unwrap_or(""),
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn messages(args: MessagesArgs) -> anyhow::Result<ExitCode> {
    let mut query = "/v1/messages?".to_string();
    if let Some(script) = &args.script {
        query.push_str(&format!("&script_id={script}"));
    }
    runtime()?.block_on(async {
        let messages = match listing(&args.server, &query, "messages", args.limit as usize).await? {
            Ok(messages) => messages,
            Err(error) => {
                eprintln!("roost: {error}");
                return Ok(ExitCode::from(1));
            }
        };
        for message in &messages {
            let label = |key: &str| message[key].as_str().map(str::to_string);
            let mut head = vec![format!(
                "{} from {} (run {})",
                message["id"].as_str().unwrap_or("?"),
                message["script_id"].as_str().unwrap_or("?"),
                message["run_id"].as_str().unwrap_or("?")
            )];
            head.extend(label("channel").map(|c| format!("channel {c}")));
            head.extend(label("to").map(|t| format!("to {t}")));
            println!("{}", head.join(", "));
            if let Some(subject) = label("subject") {
                println!("  subject: {subject}");
            }
            for line in message["body"].as_str().unwrap_or("").lines() {
                println!("  {line}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(print_text(
        &args.server,
        &format!("/v1/runs/{}/logs", args.run_id),
    ))
}
