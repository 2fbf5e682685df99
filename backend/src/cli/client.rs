//! Commands that talk to a running server: `deploy`, `integrations`,
//! `runs`, `logs`, `messages`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::api::{Deployed, ErrorBody, MessagePage, Page, RunPage};

#[derive(Debug, Clone, clap::Args)]
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
        /// Print the registry as JSON instead of its markdown index.
        #[arg(long)]
        json: bool,
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
    let deployed = runtime()?.block_on(deploy_component(&args.server, &name, &bytes))?;
    Ok(match deployed {
        Some(_) => ExitCode::SUCCESS,
        None => ExitCode::from(1),
    })
}

/// Deploys `bytes` as the script `name` and prints the outcome: the
/// deploy line, or the refusal (with the setup URL of each missing
/// integration). `None` when the server refused it.
pub(super) async fn deploy_component(
    server: &ServerArgs,
    name: &str,
    bytes: &[u8],
) -> anyhow::Result<Option<Deployed>> {
    let body = json!({ "name": name, "component": base64::engine::general_purpose::STANDARD.encode(bytes) });
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/scripts/deploy",
            server.server.trim_end_matches('/')
        ))
        .bearer_auth(&server.token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(super::progress::uploading(serde_json::to_vec(&body)?))
        .send()
        .await
        .with_context(|| format!("connecting to {}", server.server));
    let response = match response {
        Ok(response) => response,
        Err(err) => {
            super::progress::done();
            return Err(err);
        }
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    super::progress::done();
    if status.is_success() {
        let deployed: Deployed =
            serde_json::from_str(&text).context("the server's answer to the deploy is not one")?;
        println!(
            "deployed `{name}`: script {} version {}",
            deployed.script_id, deployed.version
        );
        for notice in &deployed.notices {
            eprintln!("roost: note: {notice}");
        }
        return Ok(Some(deployed));
    }
    let Ok(ErrorBody { error }) = serde_json::from_str::<ErrorBody>(&text) else {
        eprintln!("roost: deploy refused ({status}): {}", text.trim());
        return Ok(None);
    };
    eprintln!(
        "roost: deploy refused ({status}): {} ({})",
        error.message, error.code
    );
    let details = error.details.unwrap_or_default();
    if let Some(missing) = details["missing"].as_array() {
        for link in missing {
            println!(
                "connect {}: {}",
                link["integration"].as_str().unwrap_or("?"),
                link["setup_url"].as_str().unwrap_or("?")
            );
        }
    }
    if let Some(known) = details["known"].as_array() {
        let known: Vec<&str> = known.iter().filter_map(Value::as_str).collect();
        eprintln!("roost: known integrations: {}", known.join(", "));
    }
    Ok(None)
}

pub(super) fn integrations(command: IntegrationsCommand) -> anyhow::Result<ExitCode> {
    let (server, path) = match command {
        IntegrationsCommand::List { json: true, server } => {
            (server, "/v1/integrations".to_string())
        }
        IntegrationsCommand::List { server, .. } => (server, "/v1/integrations/docs".to_string()),
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
        eprintln!("roost: {}", refusal(status, &text));
        Ok(ExitCode::from(1))
    }
}

/// A refusal as one line: the server's message and code, never its JSON.
pub(super) fn refusal(status: reqwest::StatusCode, text: &str) -> String {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => format!("{status}: {} ({})", body.error.message, body.error.code),
        Err(_) => format!("{status}: {}", text.trim()),
    }
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(super) struct RunsArgs {
    #[command(subcommand)]
    command: Option<super::replay::RunsCommand>,
    /// Only this script's runs.
    #[arg(long)]
    script: Option<String>,
    /// Only runs in this status (queued, running, succeeded, failed, timed_out, limit_exceeded, cancelled).
    #[arg(long)]
    status: Option<String>,
    /// How many (fetched page by page).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Print the runs as JSON instead of a table.
    #[arg(long)]
    json: bool,
    // Optional only so that `runs replay` (with its own) parses without it.
    #[command(flatten)]
    server: Option<ServerArgs>,
}

#[derive(Debug, clap::Args)]
pub(super) struct MessagesArgs {
    /// Only messages left by this script.
    #[arg(long)]
    script: Option<String>,
    /// How many (fetched page by page).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Print the messages as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Args)]
pub(super) struct LogsArgs {
    /// The run id (from `roost runs`).
    run_id: String,
    /// Print the output as it arrives until the run ends, then its status
    /// (exit 1 unless it succeeded).
    #[arg(long, short)]
    follow: bool,
    #[command(flatten)]
    server: ServerArgs,
}

pub(super) async fn get(
    server: &ServerArgs,
    path: &str,
) -> anyhow::Result<(reqwest::StatusCode, String)> {
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
async fn listing<P: Page>(
    server: &ServerArgs,
    path: &str,
    limit: usize,
) -> anyhow::Result<Result<Vec<P::Item>, String>> {
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
            return Ok(Err(refusal(status, &text)));
        }
        let (page, next) = serde_json::from_str::<P>(&text)
            .context("the server's page is not one")?
            .into_parts();
        items.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(Ok(items))
}

pub(super) fn runs(args: RunsArgs) -> anyhow::Result<ExitCode> {
    if let Some(command) = args.command {
        return super::replay::execute(command);
    }
    let server = args
        .server
        .context("the following argument is needed: --token (or ROOST_TOKEN)")?;
    let mut query = "/v1/runs?".to_string();
    if let Some(script) = &args.script {
        query.push_str(&format!("&script_id={script}"));
    }
    if let Some(status) = &args.status {
        query.push_str(&format!("&status={status}"));
    }
    runtime()?.block_on(async {
        let runs = match listing::<RunPage>(&server, &query, args.limit as usize).await? {
            Ok(runs) => runs,
            Err(error) => {
                eprintln!("roost: {error}");
                return Ok(ExitCode::from(1));
            }
        };
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "runs": runs }))?
            );
            return Ok(ExitCode::SUCCESS);
        }
        let rows = runs
            .iter()
            .map(|run| {
                vec![
                    run.id.clone(),
                    run.script_id.clone(),
                    run.script_version.to_string(),
                    run.status.as_str().to_string(),
                    run.duration_ms.map(|ms| ms.to_string()).unwrap_or_default(),
                    run.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        super::table::print(&["run", "script", "v", "status", "ms", "error"], rows);
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn messages(args: MessagesArgs) -> anyhow::Result<ExitCode> {
    let mut query = "/v1/messages?".to_string();
    if let Some(script) = &args.script {
        query.push_str(&format!("&script_id={script}"));
    }
    runtime()?.block_on(async {
        let messages =
            match listing::<MessagePage>(&args.server, &query, args.limit as usize).await? {
                Ok(messages) => messages,
                Err(error) => {
                    eprintln!("roost: {error}");
                    return Ok(ExitCode::from(1));
                }
            };
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "messages": messages }))?
            );
            return Ok(ExitCode::SUCCESS);
        }
        for message in &messages {
            let mut head = vec![format!(
                "{} from {} (run {})",
                message.id, message.script_id, message.run_id
            )];
            head.extend(message.channel.as_ref().map(|c| format!("channel {c}")));
            head.extend(message.recipient.as_ref().map(|t| format!("to {t}")));
            println!("{}", head.join(", "));
            if let Some(subject) = &message.subject {
                println!("  subject: {subject}");
            }
            for line in message.body.lines() {
                println!("  {line}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    if args.follow {
        return runtime()?.block_on(super::follow::follow(&args.server, &args.run_id));
    }
    runtime()?.block_on(print_text(
        &args.server,
        &format!("/v1/runs/{}/logs", args.run_id),
    ))
}
