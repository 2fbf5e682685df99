//! `roost state list|get|set|delete|clear SCRIPT`: a deployed script's
//! state, through the server's API.

use std::process::ExitCode;

use anyhow::Context;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use super::client::{ServerArgs, runtime};
use super::start::script_id;
use crate::api::{StateEntryView, StatePage};

#[derive(Debug, clap::Subcommand)]
pub(super) enum StateCommand {
    /// List a script's state, in key order.
    List {
        /// The script's name or id.
        script: String,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// How many (fetched page by page).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print the entries as JSON, one object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print the value under a key, as JSON.
    Get {
        /// The script's name or id.
        script: String,
        /// The key.
        key: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Set a key to a JSON value.
    Set {
        /// The script's name or id.
        script: String,
        /// The key.
        key: String,
        /// The value, as JSON (`42`, `"text"`, `{"cursor": 7}`).
        value: String,
        /// Forget the value after this many seconds.
        #[arg(long)]
        ttl_seconds: Option<i64>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove a key.
    Delete {
        /// The script's name or id.
        script: String,
        /// The key.
        key: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Forget all of a script's state.
    Clear {
        /// The script's name or id.
        script: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub(super) fn execute(command: StateCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let command = command.with_script_id().await?;
        match command {
            StateCommand::List {
                script,
                prefix,
                limit,
                json,
                server,
            } => list(&server, &script, &prefix, limit, json).await,
            StateCommand::Get {
                script,
                key,
                server,
            } => {
                let answer = call(&server, Method::GET, &entry_path(&script, &key), None).await?;
                Ok(answer.map_or_else(failed, |body| {
                    let entry: StateEntryView = serde_json::from_value(body["entry"].clone())
                        .unwrap_or_else(|_| missing_entry(&key));
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&entry.value).unwrap_or_default()
                    );
                    ExitCode::SUCCESS
                }))
            }
            StateCommand::Set {
                script,
                key,
                value,
                ttl_seconds,
                server,
            } => {
                let value: Value = match serde_json::from_str(&value) {
                    Ok(value) => value,
                    Err(e) => {
                        eprintln!(
                            "roost: the value is not JSON ({e}); quote text as \"\\\"text\\\"\""
                        );
                        return Ok(ExitCode::from(2));
                    }
                };
                let mut body = json!({ "value": value });
                if let Some(ttl) = ttl_seconds {
                    body["ttlSeconds"] = json!(ttl);
                }
                let answer =
                    call(&server, Method::PUT, &entry_path(&script, &key), Some(body)).await?;
                Ok(answer.map_or_else(failed, |_| {
                    println!("set `{key}`");
                    ExitCode::SUCCESS
                }))
            }
            StateCommand::Delete {
                script,
                key,
                server,
            } => {
                let answer =
                    call(&server, Method::DELETE, &entry_path(&script, &key), None).await?;
                Ok(answer.map_or_else(failed, |_| {
                    println!("deleted `{key}`");
                    ExitCode::SUCCESS
                }))
            }
            StateCommand::Clear { script, server } => {
                let path = format!("/v1/scripts/{}/state", segment(&script));
                let answer = call(&server, Method::DELETE, &path, None).await?;
                Ok(answer.map_or_else(failed, |body| {
                    println!("deleted {} key(s)", body["deleted"]);
                    ExitCode::SUCCESS
                }))
            }
        }
    })
}

impl StateCommand {
    /// The command with its script named by id.
    async fn with_script_id(mut self) -> anyhow::Result<Self> {
        let (StateCommand::List { script, server, .. }
        | StateCommand::Get { script, server, .. }
        | StateCommand::Set { script, server, .. }
        | StateCommand::Delete { script, server, .. }
        | StateCommand::Clear { script, server }) = &mut self;
        let base = server.server.trim_end_matches('/').to_string();
        *script = script_id(&reqwest::Client::new(), server, &base, script).await?;
        Ok(self)
    }
}

async fn list(
    server: &ServerArgs,
    script: &str,
    prefix: &str,
    limit: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut cursor: Option<String> = None;
    let mut shown = 0;
    let mut page_usage = None;
    while shown < limit {
        let mut url = Url::parse("http://roost/").expect("a URL");
        url.set_path(&format!("/v1/scripts/{}/state", segment(script)));
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("prefix", prefix);
            query.append_pair("limit", &(limit - shown).min(500).to_string());
            if let Some(cursor) = &cursor {
                query.append_pair("cursor", cursor);
            }
        }
        let path = format!("{}?{}", url.path(), url.query().unwrap_or(""));
        let body = match call(server, Method::GET, &path, None).await? {
            Ok(body) => body,
            Err(message) => return Ok(failed(message)),
        };
        let page: StatePage =
            serde_json::from_value(body).context("the server's page is not one")?;
        for entry in &page.entries {
            if json {
                println!("{}", serde_json::to_string(entry)?);
                continue;
            }
            let expires = entry
                .expires_at
                .map(|at| format!("  (expires {})", time(at)))
                .unwrap_or_default();
            println!("{}  {}{expires}", entry.key, entry.value);
        }
        shown += page.entries.len();
        page_usage = Some((page.usage, page.quota));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if let Some((usage, quota)) = page_usage {
        eprintln!(
            "roost: {} key(s), {} byte(s) of {} keys and {} bytes allowed",
            usage.keys, usage.bytes, quota.max_keys, quota.max_bytes
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The path of `key` of `script`, each percent-encoded.
fn entry_path(script: &str, key: &str) -> String {
    format!("/v1/scripts/{}/state/{}", segment(script), segment(key))
}

/// `text` as one path segment.
pub(super) fn segment(text: &str) -> String {
    let mut url = Url::parse("http://roost/").expect("a URL");
    url.path_segments_mut().expect("a base").push(text);
    url.path().trim_start_matches('/').to_string()
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

fn missing_entry(key: &str) -> StateEntryView {
    StateEntryView {
        key: key.to_string(),
        value: Value::Null,
        expires_at: None,
        updated_at: 0,
        run_id: None,
    }
}

pub(super) fn failed(message: String) -> ExitCode {
    eprintln!("roost: {message}");
    ExitCode::from(1)
}

/// Sends one request; the answer's JSON, or one line saying why not.
pub(super) async fn call(
    server: &ServerArgs,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Result<Value, String>> {
    let mut request = reqwest::Client::new()
        .request(
            method,
            format!("{}{path}", server.server.trim_end_matches('/')),
        )
        .bearer_auth(&server.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("connecting to {}", server.server))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        if status == StatusCode::NO_CONTENT || text.is_empty() {
            return Ok(Ok(Value::Null));
        }
        return Ok(Ok(
            serde_json::from_str(&text).context("the server's answer is not JSON")?
        ));
    }
    // One line: what the server said and its code, never its raw JSON.
    Ok(Err(super::client::refusal(status, &text)))
}
