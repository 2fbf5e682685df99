//! `/scripts`: the user's scripts, one script with its versions,
//! schedules, state and URLs, and the forms that act on them.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::error::WebError;
use super::extract::{CsrfForm, Viewer};
use super::view::{maybe_when, trigger, when};
use super::{Nav, render, see_other};
use crate::http::AppState;
use crate::store::SchedulePatch;
use crate::triggers::ManualRequest;
use crate::triggers::schedule::Schedule;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/scripts", get(list))
        .route("/scripts/{id}", get(one))
        .route("/scripts/{id}/rollback", post(rollback))
        .route("/scripts/{id}/schedules/{handler}", post(schedule))
        .route("/scripts/{id}/run", post(run_now))
}

struct LastRun {
    id: String,
    status: String,
    when: String,
}

struct ScriptLine {
    id: String,
    name: String,
    version: i64,
    triggers: Vec<String>,
    next_tick: String,
    last_run: Option<LastRun>,
    failures: i64,
}

#[derive(Template)]
#[template(path = "scripts.html")]
struct ScriptsPage {
    nav: Nav,
    scripts: Vec<ScriptLine>,
    chart: String,
}

async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, WebError> {
    let summaries = state.web.dashboard.scripts(&viewer.user.id).await?;
    let scripts = summaries
        .into_iter()
        .map(|s| ScriptLine {
            id: s.script.id,
            name: s.script.name,
            version: s.script.current_version,
            triggers: s.triggers.iter().map(trigger).collect(),
            next_tick: maybe_when(s.next_tick),
            last_run: s.last_run.map(|run| LastRun {
                when: when(run.queued_at),
                status: run.status.to_string(),
                id: run.id,
            }),
            failures: s.failures_24h,
        })
        .collect();
    Ok(render::ok(&ScriptsPage {
        chart: super::chart(&state, &viewer.user.id, None).await,
        nav: Nav::new(&viewer, "scripts"),
        scripts,
    }))
}

struct ScheduleLine {
    handler: String,
    cron: String,
    timezone: Option<String>,
    paused: bool,
    catch_up: String,
    overlap: String,
    next_tick: String,
}

struct VersionLine {
    version: i64,
    deployed: String,
    hash: String,
}

struct UrlLine {
    label: String,
    url: String,
}

#[derive(Template)]
#[template(path = "script.html")]
struct ScriptPage {
    nav: Nav,
    id: String,
    name: String,
    current_version: i64,
    updated: String,
    notice: Option<&'static str>,
    handlers: Vec<String>,
    triggers: Vec<String>,
    schedules: Vec<ScheduleLine>,
    urls: Vec<UrlLine>,
    state_keys: Vec<(String, String)>,
    state_more: bool,
    state_usage: String,
    versions: Vec<VersionLine>,
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

/// What a form did, said on the page it returns to. Fixed sentences: the
/// query only picks one.
fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "rolled-back" => Some("The version was made current; new runs use it."),
        "schedule" => Some("The schedule was changed."),
        _ => None,
    }
}

/// Most state entries the page shows.
const STATE_ON_PAGE: i64 = 50;

async fn one(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let user_id = viewer.user.id.as_str();
    let (script, triggers) = state.scripts.get(user_id, &id).await?;
    let versions = state.scripts.versions(user_id, &id).await?;
    let now = crate::store::now_millis();
    let schedules = state
        .scripts
        .schedules(user_id, &id)
        .await?
        .into_iter()
        .map(|s| ScheduleLine {
            next_tick: if s.paused {
                "— (paused)".into()
            } else {
                maybe_when(
                    Schedule::parse(&s.cron, s.timezone.as_deref())
                        .ok()
                        .and_then(|c| c.occurrences_between(now, i64::MAX / 2, 1).first().copied()),
                )
            },
            handler: s.handler,
            cron: s.cron,
            timezone: s.timezone,
            paused: s.paused,
            catch_up: s.catch_up,
            overlap: s.overlap,
        })
        .collect();
    let handlers = versions
        .iter()
        .find(|v| v.version == script.current_version)
        .and_then(|v| v.metadata["handlers"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|h| h["name"].as_str().map(str::to_string))
        .collect();
    let internal = |e: &dyn std::fmt::Display| WebError::Internal(e.to_string());
    let mut urls: Vec<UrlLine> = state
        .http_handlers
        .endpoints(user_id, &id)
        .await
        .map_err(|e| internal(&e))?
        .into_iter()
        .map(|e| UrlLine {
            label: format!("{} {} → {}", e.method, e.path, e.handler),
            url: e.url,
        })
        .collect();
    urls.extend(
        state
            .webhooks
            .for_script(user_id, &id)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|w| UrlLine {
                label: format!("{} webhook ({})", w.integration, w.events.join(", ")),
                url: w.url,
            }),
    );
    let page = state
        .state
        .list(user_id, &id, "", None, STATE_ON_PAGE)
        .await
        .map_err(|e| internal(&e))?;
    Ok(render::ok(&ScriptPage {
        nav: Nav::new(&viewer, "scripts"),
        notice: notice(done.done.as_deref()),
        updated: when(script.updated_at),
        current_version: script.current_version,
        handlers,
        triggers: triggers.iter().map(trigger).collect(),
        schedules,
        urls,
        state_more: page.next.is_some(),
        state_usage: format!("{} keys, {} bytes", page.usage.keys, page.usage.bytes),
        state_keys: page.entries.into_iter().map(|e| (e.key, e.value)).collect(),
        versions: versions
            .into_iter()
            .map(|v| VersionLine {
                version: v.version,
                deployed: when(v.created_at),
                hash: v.content_hash.chars().take(12).collect(),
            })
            .collect(),
        id: script.id,
        name: script.name,
    }))
}

#[derive(Deserialize)]
struct RollbackForm {
    version: String,
}

async fn rollback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm { viewer, form }: CsrfForm<RollbackForm>,
) -> Result<Response, WebError> {
    let version: i64 = form
        .version
        .parse()
        .map_err(|_| WebError::BadRequest(format!("`{}` is not a version number", form.version)))?;
    state
        .scripts
        .roll_back(&viewer.user.id, &id, version)
        .await?;
    Ok(see_other(format!("/scripts/{id}?done=rolled-back")))
}

#[derive(Deserialize)]
struct ScheduleForm {
    paused: Option<String>,
    catch_up: Option<String>,
    overlap: Option<String>,
}

async fn schedule(
    State(state): State<AppState>,
    Path((id, handler)): Path<(String, String)>,
    CsrfForm { viewer, form }: CsrfForm<ScheduleForm>,
) -> Result<Response, WebError> {
    let paused = match form.paused.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "`paused` is true or false, not `{other}`"
            )));
        }
    };
    let patch = SchedulePatch {
        paused,
        catch_up: form.catch_up,
        overlap: form.overlap,
    };
    state
        .scripts
        .update_schedule(&viewer.user.id, &id, &handler, &patch)
        .await?;
    Ok(see_other(format!("/scripts/{id}?done=schedule")))
}

#[derive(Deserialize)]
struct RunForm {
    handler: Option<String>,
    payload: Option<String>,
}

async fn run_now(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm { viewer, form }: CsrfForm<RunForm>,
) -> Result<Response, WebError> {
    // The same limit as the API's manual runs: every run keeps its payload.
    let limit = state.guards.limits.max_payload_bytes;
    if form.payload.as_ref().is_some_and(|p| p.len() > limit) {
        return Err(WebError::TooLarge(format!(
            "the payload is larger than the {limit} bytes a run's payload may be; \
             pass a reference to the data (a URL, an id) instead"
        )));
    }
    let payload = match form.payload.as_deref().map(str::trim) {
        None | Some("") => serde_json::Value::Null,
        Some(text) => serde_json::from_str(text)
            .map_err(|e| WebError::BadRequest(format!("the payload is not JSON: {e}")))?,
    };
    let request = ManualRequest {
        handler: form.handler.filter(|h| !h.is_empty()),
        payload,
        idempotency_key: None,
        wait: None,
        trigger: Default::default(),
        not_before: None,
    };
    let started = state
        .manual
        .start(&viewer.user.id, &id, request)
        .await
        .map_err(WebError::from_manual)?;
    Ok(see_other(format!("/runs/{}", started.run.id)))
}
