//! `roost runs replay`: finished runs queued again on the server (`POST
//! /v1/runs/replay`), or with `--dry-run` the list of what would go.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use super::client::{ServerArgs, runtime};
use crate::api::{ErrorBody, ReplayAnswer};

#[derive(Debug, clap::Subcommand)]
pub(super) enum RunsCommand {
    /// Queue finished runs again with their payloads, each new run linked
    /// to its original (name a script or --since).
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
pub(super) struct ReplayArgs {
    /// Only this script's runs: its id (`scr_…`) or its name.
    #[arg(long)]
    script: Option<String>,
    /// Only runs that ended so (repeat or comma-separate; default: failed,
    /// timed_out, limit_exceeded).
    #[arg(long, value_delimiter = ',')]
    status: Vec<String>,
    /// Only runs queued since then: a time ago (`90s`, `15m`, `1h`, `2d`),
    /// an RFC 3339 time, or Unix ms.
    #[arg(long)]
    since: Option<String>,
    /// Only runs queued before then (as --since).
    #[arg(long)]
    until: Option<String>,
    /// Refuse if the filter matches more runs than this (server default
    /// 100, at most 1000).
    #[arg(long)]
    limit: Option<i64>,
    /// Show what would be replayed, and queue nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the server's answer as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

pub(super) fn execute(command: RunsCommand) -> anyhow::Result<ExitCode> {
    match command {
        RunsCommand::Replay(args) => replay(args),
    }
}

fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let now = crate::store::now_millis();
    let mut body = json!({ "dry_run": args.dry_run });
    if !args.status.is_empty() {
        body["status"] = json!(args.status);
    }
    for (field, given) in [("since", &args.since), ("until", &args.until)] {
        if let Some(given) = given {
            body[field] = when(given, now).with_context(|| {
                format!(
                    "--{field} is a time ago (90s, 15m, 1h, 2d), an RFC 3339 time or Unix ms, \
                     not `{given}`"
                )
            })?;
        }
    }
    if let Some(limit) = args.limit {
        body["limit"] = json!(limit);
    }
    runtime()?.block_on(async {
        let client = reqwest::Client::new();
        let base = args.server.server.trim_end_matches('/').to_string();
        if let Some(script) = &args.script {
            body["script_id"] =
                json!(super::start::script_id(&client, &args.server, &base, script).await?);
        }
        let response = client
            .post(format!("{base}/v1/runs/replay"))
            .bearer_auth(&args.server.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("connecting to {}", args.server.server))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            match serde_json::from_str::<ErrorBody>(&text) {
                Ok(ErrorBody { error }) => {
                    eprintln!(
                        "roost: replay refused: {} ({status}): {}",
                        error.code, error.message
                    )
                }
                Err(_) => eprintln!("roost: replay refused ({status})"),
            }
            return Ok(ExitCode::from(1));
        }
        let answer: ReplayAnswer =
            serde_json::from_str(&text).context("the server's answer to the replay is not one")?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&answer)?);
        } else {
            print_table(&answer);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The server's form of a `--since`/`--until` value: a time ago becomes
/// Unix ms from `now`; an RFC 3339 time or Unix ms goes as given.
fn when(given: &str, now: i64) -> Option<Value> {
    let given = given.trim();
    if let Ok(ms) = given.parse::<i64>() {
        return Some(json!(ms));
    }
    if chrono::DateTime::parse_from_rfc3339(given).is_ok() {
        return Some(json!(given));
    }
    let ago = time_ago(given)?;
    Some(json!(
        now.saturating_sub(i64::try_from(ago.as_millis()).ok()?)
    ))
}

/// `90s`, `15m`, `1h`, `2d` as a duration.
fn time_ago(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(number.checked_mul(unit_secs)?))
}

fn print_table(answer: &ReplayAnswer) {
    let verb = if answer.dry_run {
        "would be replayed (dry run, nothing queued)"
    } else {
        "replayed"
    };
    println!(
        "{} of {} matched runs {verb}; {} skipped",
        answer.queued.len(),
        answer.matched,
        answer.skipped.len()
    );
    if !answer.queued.is_empty() {
        println!(
            "{:<30} {:<30} {:<15}    new run",
            "original", "script", "status"
        );
        for run in &answer.queued {
            println!(
                "{:<30} {:<30} {:<15} -> {}",
                run.original,
                run.script_id,
                run.original_status.as_str(),
                run.run_id.as_deref().unwrap_or("(dry run)")
            );
        }
    }
    for skipped in &answer.skipped {
        let reason = serde_json::to_value(skipped.reason).unwrap_or_default();
        println!(
            "skipped {}: {}",
            skipped.run_id,
            reason.as_str().unwrap_or("?")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_ago_and_absolute_times_become_what_the_server_reads() {
        let now = 10_000_000;
        assert_eq!(when("1h", now), Some(json!(now - 3_600_000)));
        assert_eq!(when("90s", now), Some(json!(now - 90_000)));
        assert_eq!(
            when("1700000000000", now),
            Some(json!(1_700_000_000_000_i64))
        );
        assert_eq!(
            when("2026-01-02T03:04:05Z", now),
            Some(json!("2026-01-02T03:04:05Z"))
        );
        assert_eq!(when("yesterday", now), None);
        assert_eq!(when("5w", now), None);
    }
}
