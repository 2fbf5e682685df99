//! `/runs`: the user's runs, filtered, kept current while the page is
//! open; one run with its calls and output, followed live while it runs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use super::error::{WebError, urlencode};
use super::extract::{CsrfForm, Viewer};
use super::view::{RunLine, duration, maybe_when};
use super::{Nav, render, see_other};
use crate::http::AppState;
use crate::queue::follow::{RunEvent, RunState};
use crate::store::{PageAfter, RunFilter, RunRow, RunStatus, WaitReason};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/runs", get(list))
        .route("/runs/live", get(list_live))
        .route("/runs/{id}", get(one))
        .route("/runs/{id}/live", get(one_live))
        .route("/runs/{id}/cancel", post(cancel))
}

/// Runs on one page.
const PAGE: i64 = 50;

/// How often an open runs list looks for changes.
const LIST_POLL: Duration = Duration::from_secs(1);

/// How long one live list answer lasts; the browser then asks again, so
/// a signed-out session stops getting rows.
const LIST_LIFETIME: Duration = Duration::from_secs(300);

const STATUSES: [&str; 7] = [
    "queued",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "limit_exceeded",
    "cancelled",
];

/// The runs page's query, as typed (kept to fill the form again).
#[derive(Deserialize, Default, Clone)]
struct Filter {
    #[serde(default)]
    script: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    older: Option<String>,
}

impl Filter {
    fn parse(&self) -> Result<RunFilter, WebError> {
        let status = match self.status.as_str() {
            "" => None,
            s => Some(s.parse::<RunStatus>().map_err(|_| {
                WebError::BadRequest(format!("`{s}` is not a run status; use one of the list"))
            })?),
        };
        let after = match &self.older {
            None => None,
            Some(cursor) => {
                let (at, id) = cursor
                    .split_once(':')
                    .and_then(|(at, id)| Some((at.parse().ok()?, id)))
                    .ok_or_else(|| WebError::BadRequest("the page link is damaged".into()))?;
                Some(PageAfter {
                    at,
                    id: id.to_string(),
                })
            }
        };
        Ok(RunFilter {
            script_id: (!self.script.is_empty()).then(|| self.script.clone()),
            status,
            since: local_time(&self.since, "since")?,
            before: local_time(&self.until, "until")?,
            after,
            limit: PAGE,
        })
    }

    /// The query string of this filter (without a page cursor).
    fn query(&self) -> String {
        [
            ("script", &self.script),
            ("status", &self.status),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// A `datetime-local` value, read as UTC.
fn local_time(text: &str, field: &str) -> Result<Option<i64>, WebError> {
    if text.is_empty() {
        return Ok(None);
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| Some(t.and_utc().timestamp_millis()))
        .ok_or_else(|| {
            WebError::BadRequest(format!(
                "`{field}` is a date and time like 2026-12-07T09:30"
            ))
        })
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    nav: Nav,
    filter: Filter,
    scripts: Vec<(String, String)>,
    statuses: [&'static str; 7],
    runs: Vec<RunLine>,
    older: Option<String>,
    live: Option<String>,
    chart: String,
}

#[derive(Template)]
#[template(path = "run_rows.html")]
struct RunRows {
    runs: Vec<RunLine>,
}

/// The user's script names by id.
async fn script_names(
    state: &AppState,
    user_id: &str,
) -> Result<HashMap<String, String>, WebError> {
    Ok(state
        .scripts
        .list(user_id)
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect())
}

fn lines(runs: &[RunRow], names: &HashMap<String, String>) -> Vec<RunLine> {
    runs.iter()
        .map(|run| {
            let name = names
                .get(&run.script_id)
                .map_or("(deleted)", String::as_str);
            RunLine::new(run, name)
        })
        .collect()
}

async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Result<Response, WebError> {
    let run_filter = filter.parse()?;
    let user_id = viewer.user.id.as_str();
    let runs = state.runs.list(user_id, &run_filter).await?;
    let names = script_names(&state, user_id).await?;
    let query = filter.query();
    let older = (runs.len() as i64 == PAGE)
        .then(|| runs.last())
        .flatten()
        .map(|last| {
            let cursor = urlencode(&format!("{}:{}", last.queued_at, last.id));
            format!(
                "/runs?{query}{}older={cursor}",
                if query.is_empty() { "" } else { "&" }
            )
        });
    // Only the newest page changes as runs come and go.
    let live = filter
        .older
        .is_none()
        .then(|| format!("/runs/live?{query}"));
    let mut scripts: Vec<(String, String)> = names.clone().into_iter().collect();
    scripts.sort_by(|a, b| a.1.cmp(&b.1));
    let script = run_filter.script_id.as_deref();
    Ok(render::ok(&RunsPage {
        chart: super::chart(&state, user_id, script).await,
        nav: Nav::new(&viewer, "runs"),
        runs: lines(&runs, &names),
        filter,
        scripts,
        statuses: STATUSES,
        older,
        live,
    }))
}

/// The newest page of runs, as table rows, each time it changes.
async fn list_live(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Result<impl IntoResponse, WebError> {
    let run_filter = RunFilter {
        after: None,
        ..filter.parse()?
    };
    let user_id = viewer.user.id;
    let mut closing = state.runs.closing();
    let stream = async_stream(move |sender| async move {
        let deadline = tokio::time::Instant::now() + LIST_LIFETIME;
        let mut last = String::new();
        let mut tick = tokio::time::interval(LIST_POLL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::time::sleep_until(deadline) => return,
                _ = closing.wait_for(|closed| *closed) => return,
            }
            let rows = match rows_html(&state, &user_id, &run_filter).await {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::warn!(error = %err, "a live runs list could not be read");
                    continue;
                }
            };
            if rows != last {
                if sender
                    .send(Event::default().event("rows").data(&rows))
                    .await
                    .is_err()
                {
                    return;
                }
                last = rows;
            }
        }
    });
    Ok(Sse::new(stream.map(Ok::<_, Infallible>)).keep_alive(KeepAlive::default()))
}

async fn rows_html(
    state: &AppState,
    user_id: &str,
    filter: &RunFilter,
) -> Result<String, WebError> {
    let runs = state.runs.list(user_id, filter).await?;
    let names = script_names(state, user_id).await?;
    RunRows {
        runs: lines(&runs, &names),
    }
    .render()
    .map_err(|e| WebError::Internal(e.to_string()))
}

/// A stream fed by a task that `produce` runs; it ends when the task does
/// or when the answer is dropped.
fn async_stream<F, Fut>(produce: F) -> impl Stream<Item = Event>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::spawn(produce(sender));
    tokio_stream_from(receiver)
}

fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Event>,
) -> impl Stream<Item = Event> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

struct CallLine {
    integration: String,
    method: String,
    status: String,
    http: String,
    attempts: i64,
    duration: String,
    error: String,
}

struct AttemptLine {
    id: String,
    attempt: i64,
    status: String,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    nav: Nav,
    id: String,
    script_id: String,
    version: i64,
    run: RunLine,
    first_run: Option<String>,
    /// A run at a time (or a retry's backoff): not before this.
    not_before: Option<String>,
    /// Why it waited to start (flow control, a retry's backoff, its time).
    waited: Option<&'static str>,
    /// The event that started it, and its chain depth.
    cause: Option<(String, i64)>,
    /// The run this one replays.
    replay_of: Option<String>,
    started: String,
    finished: String,
    exit_code: String,
    error: Option<String>,
    denials: Vec<String>,
    retries: Vec<AttemptLine>,
    live: bool,
    stdout: String,
    stderr: String,
    stdout_truncated: bool,
    stderr_truncated: bool,
    payload: String,
    calls: Vec<CallLine>,
    cancellable: bool,
}

/// The hosts a run's error says were denied (the executor lists them
/// after "outbound requests denied: ").
fn denials(error: Option<&str>) -> Vec<String> {
    error
        .and_then(|e| e.split_once("outbound requests denied: "))
        .map(|(_, list)| list.split("; ").map(str::to_string).collect())
        .unwrap_or_default()
}

async fn one(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let user_id = viewer.user.id.as_str();
    let (run, calls) = state
        .runs
        .get(user_id, &id)
        .await?
        .ok_or_else(|| WebError::NotFound("run".into()))?;
    let (_, logs) = state
        .runs
        .logs(user_id, &id)
        .await?
        .ok_or_else(|| WebError::NotFound("run".into()))?;
    let names = script_names(&state, user_id).await?;
    let first = run.first_run_id.clone().unwrap_or_else(|| run.id.clone());
    // Every attempt of this run, when it was retried or is a retry.
    let retries = if run.attempt > 1 || run.status.is_terminal() {
        state
            .web
            .dashboard
            .attempts(user_id, &first)
            .await?
            .into_iter()
            .map(|(id, attempt, status)| AttemptLine {
                id,
                attempt,
                status: status.to_string(),
            })
            .collect::<Vec<_>>()
    } else {
        Vec::new()
    };
    let retries = if retries.len() > 1 {
        retries
    } else {
        Vec::new()
    };
    let script = names
        .get(&run.script_id)
        .map_or("(deleted)", String::as_str);
    Ok(render::ok(&RunPage {
        nav: Nav::new(&viewer, "runs"),
        id: run.id.clone(),
        script_id: run.script_id.clone(),
        version: run.script_version,
        run: RunLine::new(&run, script),
        first_run: run.first_run_id.clone().filter(|f| *f != run.id),
        not_before: run.not_before.map(|at| maybe_when(Some(at))),
        waited: run.wait_reason.map(WaitReason::describe),
        cause: run
            .cause_event_id
            .clone()
            .map(|event| (event, run.chain_depth)),
        replay_of: run.replay_of.clone(),
        started: maybe_when(run.started_at),
        finished: maybe_when(run.finished_at),
        exit_code: run.exit_code.map_or("—".into(), |c| c.to_string()),
        denials: denials(run.error.as_deref()),
        error: run.error.clone(),
        retries,
        live: !run.status.is_terminal(),
        stdout: String::from_utf8_lossy(&logs.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&logs.stderr).into_owned(),
        stdout_truncated: run.stdout_truncated,
        stderr_truncated: run.stderr_truncated,
        payload: serde_json::to_string_pretty(&run.payload).unwrap_or_default(),
        calls: calls
            .into_iter()
            .map(|c| CallLine {
                integration: c.integration,
                method: c.method,
                status: c.status,
                http: c.http_status.map_or("—".into(), |s| s.to_string()),
                attempts: c.attempts,
                duration: duration(Some(c.duration_ms)),
                error: c.error.unwrap_or_default(),
            })
            .collect(),
        cancellable: !run.status.is_terminal(),
    }))
}

/// What a status event tells the page, written as the page writes it.
fn shown(state: &RunState) -> serde_json::Value {
    serde_json::json!({
        "status": state.status.as_str(),
        "started": maybe_when(state.started_at),
        "finished": maybe_when(state.finished_at),
        "duration": duration(state.duration_ms),
        "exit_code": state.exit_code.map(|c| c.to_string()),
        "error": state.error,
    })
}

/// The run's status and output as it goes, for its page.
async fn one_live(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, WebError> {
    let events = state
        .runs
        .follow(&viewer.user.id, &id)
        .await?
        .ok_or_else(|| WebError::NotFound("run".into()))?;
    let events = events.map(|event| {
        Ok::<_, Infallible>(match event {
            RunEvent::Status(run) => Event::default()
                .event("status")
                .data(shown(&run).to_string()),
            RunEvent::Output(chunk) => Event::default()
                .event("output")
                .data(serde_json::to_string(&chunk).unwrap_or_default()),
            RunEvent::End(run) => Event::default().event("end").data(shown(&run).to_string()),
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize)]
struct Nothing {}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm {
        viewer,
        form: Nothing {},
    }: CsrfForm<Nothing>,
) -> Result<Response, WebError> {
    state
        .runs
        .cancel(&viewer.user.id, &id)
        .await?
        .ok_or_else(|| WebError::NotFound("run".into()))?;
    Ok(see_other(format!("/runs/{id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_hosts_are_read_from_the_error() {
        let error = "the script exited with status 1; outbound requests denied: evil.example (not declared); 10.0.0.1 (private address)";
        assert_eq!(
            denials(Some(error)),
            ["evil.example (not declared)", "10.0.0.1 (private address)"]
        );
        assert!(denials(Some("the script trapped")).is_empty());
    }

    #[test]
    fn a_filter_reads_times_as_utc() {
        assert_eq!(
            local_time("1970-01-01T00:01", "since").unwrap(),
            Some(60_000)
        );
        assert!(local_time("yesterday", "since").is_err());
    }
}
