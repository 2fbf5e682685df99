//! `roost logs <run> --follow`: a run's output as it arrives, from the
//! server's event stream (GET /v1/runs/{id}/stream), then how it ended.
//! stdout and stderr go to this command's own; the run's status changes
//! go to stderr, its final status to stdout.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use super::client::ServerArgs;

/// Follows `run_id` until it ends; exit 0 if it succeeded.
pub(super) async fn follow(server: &ServerArgs, run_id: &str) -> anyhow::Result<ExitCode> {
    let base = server.server.trim_end_matches('/');
    let mut response = reqwest::Client::new()
        .get(format!("{base}/v1/runs/{run_id}/stream"))
        .bearer_auth(&server.token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .with_context(|| format!("connecting to {}", server.server))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        eprintln!("roost: {}", super::client::refusal(status, &text));
        return Ok(ExitCode::from(1));
    }
    let mut events = EventReader::default();
    let mut shown = Shown::default();
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
                "output" => shown.output(&data)?,
                "status" => shown.status(&data),
                "end" => return Ok(ended(&data)),
                _ => {}
            }
        }
    }
    eprintln!(
        "roost: the server closed the stream before run {run_id} ended (it was {}); \
         run `roost logs {run_id} --follow` again to go on",
        shown.last_status.as_deref().unwrap_or("unknown")
    );
    Ok(ExitCode::from(1))
}

/// Prints how the run ended; its exit code.
fn ended(state: &Value) -> ExitCode {
    let run = state["run_id"].as_str().unwrap_or("?");
    let status = state["status"].as_str().unwrap_or("?");
    match state["error"].as_str() {
        Some(error) => println!("run {run}: {status}: {error}"),
        None => println!("run {run}: {status}"),
    }
    if status == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// What was printed so far.
#[derive(Default)]
struct Shown {
    last_status: Option<String>,
}

impl Shown {
    fn output(&mut self, chunk: &Value) -> anyhow::Result<()> {
        let text = chunk["text"].as_str().unwrap_or_default();
        // The server rewrote output already shown (masking caught a
        // credential's beginning late): it is printed again, whole.
        let text = match chunk["reset"].as_bool() {
            Some(true) => format!("\n[roost: the output so far, again]\n{text}"),
            _ => text.to_string(),
        };
        if chunk["stream"] == "stderr" {
            let mut err = std::io::stderr().lock();
            err.write_all(text.as_bytes())?;
            err.flush()?;
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        Ok(())
    }

    fn status(&mut self, state: &Value) {
        let status = state["status"].as_str().unwrap_or("?").to_string();
        // The final status is printed with the end.
        if matches!(status.as_str(), "queued" | "running")
            && self.last_status.as_deref() != Some(status.as_str())
        {
            eprintln!(
                "roost: run {} is {status}",
                state["run_id"].as_str().unwrap_or("?")
            );
        }
        self.last_status = Some(status);
    }
}

/// Server-sent events, parsed from a stream of bytes: `event:` names and
/// `data:` lines, one event per blank-line-separated block; comments
/// (the keep-alives) are skipped.
#[derive(Default)]
pub(super) struct EventReader {
    buffer: Vec<u8>,
}

impl EventReader {
    /// The whole events `bytes` completes, as (name, data).
    pub(super) fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block);
            let mut name = String::from("message");
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                let line = line.strip_suffix('\r').unwrap_or(line);
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => name = value.to_string(),
                    "data" => data.push(value),
                    _ => {}
                }
            }
            if !data.is_empty() {
                events.push((name, data.join("\n")));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_across_chunks_and_keep_alives_skipped() {
        let mut reader = EventReader::default();
        assert!(reader.push(b": keep-alive\n\nevent: out").is_empty());
        let events = reader.push(b"put\ndata: {\"text\":\"a\"}\n\nevent: end\ndata: {}\n\n");
        assert_eq!(
            events,
            [
                ("output".to_string(), "{\"text\":\"a\"}".to_string()),
                ("end".to_string(), "{}".to_string())
            ]
        );
    }
}
