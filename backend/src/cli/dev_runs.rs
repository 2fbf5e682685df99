//! `roost dev`'s view of the script's runs: new ones found by polling the
//! runs list, each followed on its event stream, its output printed line
//! by line behind a label (`[handler abc123]`: its handler, or what
//! started it when it names none, and the run id's tail), then
//! one line with how it ended.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::client::refusal;
use super::client::{ServerArgs, get};
use super::follow::EventReader;
use crate::api::RunPage;

/// How often the runs list is read for new runs.
const POLL: Duration = Duration::from_millis(500);
/// Runs asked for at a time; more pages are read only in a burst.
const PAGE: usize = 20;
/// Pages read in one poll at most (a burst of more is followed in part).
const MAX_PAGES: usize = 10;

/// Follows every run of a script that starts after it was made; stops
/// (with the runs it follows) when dropped.
pub(super) struct Watcher {
    pub(super) script_id: String,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    /// Starts watching `script_id`: the runs it already has are not shown.
    pub(super) async fn start(server: &ServerArgs, script_id: &str) -> anyhow::Result<Self> {
        let mut seen = HashSet::new();
        new_runs(server, script_id, &mut seen)
            .await?
            .map_err(anyhow::Error::msg)?;
        let task = tokio::spawn(poll(server.clone(), script_id.to_string(), seen));
        Ok(Self {
            script_id: script_id.to_string(),
            task,
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the runs list every `POLL` and follows each new run until the
/// task is aborted (which drops, so aborts, the followers).
async fn poll(server: ServerArgs, script_id: String, mut seen: HashSet<String>) {
    let mut followers = JoinSet::new();
    let mut last_error: Option<String> = None;
    loop {
        tokio::time::sleep(POLL).await;
        while followers.try_join_next().is_some() {}
        let error = match new_runs(&server, &script_id, &mut seen).await {
            Ok(Ok(runs)) => {
                for (run_id, what) in runs {
                    let server = server.clone();
                    followers.spawn(async move {
                        let label = label(&run_id, &what);
                        if let Err(err) = follow_run(&server, &label, &run_id).await {
                            eprintln!("roost: {label} {err:#}");
                        }
                    });
                }
                None
            }
            Ok(Err(refusal)) => Some(refusal),
            Err(err) => Some(format!("{err:#}")),
        };
        // A server that is down says so once, not every half second.
        if error.is_some() && error != last_error {
            eprintln!(
                "roost: listing the script's runs: {}",
                error.as_deref().unwrap_or_default()
            );
        }
        last_error = error;
    }
}

/// The runs of `script_id` not in `seen` (added to it), oldest first, as
/// (id, handler or trigger kind); or the server's refusal.
async fn new_runs(
    server: &ServerArgs,
    script_id: &str,
    seen: &mut HashSet<String>,
) -> anyhow::Result<Result<Vec<(String, String)>, String>> {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    // Newest first: a run seen before means the rest are older still.
    'pages: for _ in 0..MAX_PAGES {
        let mut path = format!("/v1/runs?script_id={script_id}&limit={PAGE}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, text) = get(server, &path).await?;
        if !status.is_success() {
            return Ok(Err(refusal(status, &text)));
        }
        let page: RunPage = serde_json::from_str(&text).context("the server's page is not one")?;
        for run in page.runs {
            if seen.contains(&run.id) {
                break 'pages;
            }
            let what = run
                .handler
                .unwrap_or_else(|| run.trigger_kind.as_str().to_string());
            found.push((run.id, what));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    seen.extend(found.iter().map(|(id, _)| id.clone()));
    found.reverse();
    Ok(Ok(found))
}

/// What a run's lines start with: `what` (its handler, or what started
/// it) and the end of its id.
pub(super) fn label(run_id: &str, what: &str) -> String {
    let tail = &run_id[run_id.len().saturating_sub(6)..];
    format!("[{what} {tail}]")
}

/// Starts a manual run of `script_id`; its id, or `None` when the server
/// refused it (said on stderr).
pub(super) async fn start_run(
    server: &ServerArgs,
    script_id: &str,
    handler: Option<&str>,
    payload: &Value,
) -> anyhow::Result<Option<String>> {
    let mut body = json!({ "payload": payload });
    if let Some(handler) = handler {
        body["handler"] = json!(handler);
    }
    let url = format!(
        "{}/v1/scripts/{script_id}/run",
        server.server.trim_end_matches('/')
    );
    let key = format!("dev-{}", hex::encode(rand::random::<[u8; 16]>()));
    let client = reqwest::Client::new();
    let (status, reply) =
        super::start::send_with_retries(&client, server, &url, &key, &body).await?;
    if !status.is_success() {
        eprintln!(
            "roost: the run was refused ({status}): {} ({})",
            reply["error"]["message"].as_str().unwrap_or("no details"),
            reply["error"]["code"].as_str().unwrap_or("no code")
        );
        return Ok(None);
    }
    Ok(reply["run_id"].as_str().map(str::to_string))
}

/// Prints `run_id`'s output behind `label` until it ends, then how it
/// ended; its final status.
pub(super) async fn follow_run(
    server: &ServerArgs,
    label: &str,
    run_id: &str,
) -> anyhow::Result<String> {
    let mut response = reqwest::Client::new()
        .get(format!(
            "{}/v1/runs/{run_id}/stream",
            server.server.trim_end_matches('/')
        ))
        .bearer_auth(&server.token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .with_context(|| format!("connecting to {}", server.server))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        anyhow::bail!("could not be followed: {}", refusal(status, &text));
    }
    let mut events = EventReader::default();
    let mut lines = Lines::default();
    while let Some(bytes) = response
        .chunk()
        .await
        .context("the connection to the server broke")?
    {
        for (name, data) in events.push(&bytes) {
            let Ok(data) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            match name.as_str() {
                "output" => lines.push(label, &data),
                "end" => {
                    lines.finish(label);
                    return Ok(ended(label, &data));
                }
                _ => {}
            }
        }
    }
    lines.finish(label);
    anyhow::bail!("the server closed the stream before the run ended (`roost logs {run_id}`)")
}

/// Prints how a run ended; its status.
fn ended(label: &str, state: &Value) -> String {
    let status = state["status"].as_str().unwrap_or("?");
    let took = state["duration_ms"]
        .as_i64()
        .map(|ms| format!(" in {ms} ms"))
        .unwrap_or_default();
    match state["error"].as_str() {
        Some(error) => println!("{label} {status}{took}: {error}"),
        None => println!("{label} {status}{took}"),
    }
    status.to_string()
}

/// A run's output not yet printed: the last, unfinished line of each
/// stream, printed whole when it ends.
#[derive(Default)]
struct Lines {
    partial: HashMap<bool, String>,
}

impl Lines {
    /// Prints the whole lines an `output` event completes.
    fn push(&mut self, label: &str, chunk: &Value) {
        let stderr = chunk["stream"] == "stderr";
        let text = chunk["text"].as_str().unwrap_or_default();
        // The server rewrote output already shown (masking caught a
        // credential's beginning late): it comes again, whole.
        if chunk["reset"].as_bool() == Some(true) {
            self.partial.clear();
            println!("{label} [the output so far, again]");
        }
        let buffer = self.partial.entry(stderr).or_default();
        buffer.push_str(text);
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            print_line(stderr, label, line.trim_end_matches(['\n', '\r']));
        }
    }

    /// Prints what is left of unfinished lines.
    fn finish(&mut self, label: &str) {
        for (stderr, rest) in self.partial.drain() {
            if !rest.is_empty() {
                print_line(stderr, label, &rest);
            }
        }
    }
}

fn print_line(stderr: bool, label: &str, line: &str) {
    if stderr {
        eprintln!("{label} {line}");
    } else {
        println!("{label} {line}");
    }
}
