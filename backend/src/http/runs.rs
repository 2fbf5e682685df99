//! Manual runs and run history: `POST /v1/scripts/{id}/run`, `/v1/runs…`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::extract::{ApiQuery, AuthUser, parse_json};
use super::{ApiError, AppState};
use crate::store::{Enqueued, IdempotencyKey, NewRun, RunFilter, RunStatus, TriggerKind};

/// Most runs one page returns.
const MAX_PAGE: i64 = 200;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/scripts/{id}/run", post(start))
        .route("/v1/runs", get(list))
        .route("/v1/runs/{id}", get(one))
        .route("/v1/runs/{id}/logs", get(logs))
        .route("/v1/runs/{id}/cancel", post(cancel))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunBody {
    handler: Option<String>,
    #[serde(default)]
    payload: serde_json::Value,
}

#[derive(Deserialize)]
struct WaitQuery {
    #[serde(default)]
    wait: bool,
    /// Longest wait in seconds (default 60).
    timeout: Option<u64>,
}

/// Longest `Idempotency-Key`, in characters.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

async fn start(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // The body is optional: no body is a run of the only handler with no payload.
    let body: RunBody = if raw.iter().all(u8::is_ascii_whitespace) || raw.as_ref() == b"null" {
        RunBody::default()
    } else {
        parse_json(&raw)?
    };
    let key = idempotency_key(&headers, &id, &body)?;
    let script = state
        .store
        .get_script(&user.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("script"))?;
    let triggers = state.store.triggers(&script.id).await?;
    let known: Vec<&str> = triggers.iter().map(|t| t.handler.as_str()).collect();
    match &body.handler {
        Some(handler) if !known.is_empty() && !known.contains(&handler.as_str()) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_handler",
                format!("the script has no handler `{handler}`"),
            )
            .with_details(json!({ "handlers": known })));
        }
        None if known.len() > 1 => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "handler_required",
                format!(
                    "the script has {} handlers; name one with `handler`: {}",
                    known.len(),
                    known.join(", ")
                ),
            )
            .with_details(json!({ "handlers": known })));
        }
        _ => {}
    }
    // A request that would wait takes its place first, so a refused one
    // queues nothing.
    let wait_slot = match query.wait {
        true => Some(state.runner.wait_slot(&user.id).ok_or_else(|| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_waits",
                format!(
                    "you already have {} requests waiting on runs at this server; start this run \
                     without `wait` and follow it with GET /v1/runs/{{id}}, or wait for one to answer",
                    state.runner.waits_per_user()
                ),
            )
        })?),
        false => None,
    };
    let new_run = NewRun {
        user_id: user.id.clone(),
        script_id: script.id.clone(),
        script_version: script.current_version,
        handler: body.handler,
        trigger_kind: TriggerKind::Manual,
        trigger_spec: String::new(),
        payload: body.payload,
    };
    let limits = state.guards.limits.queue_limits();
    let (run, replayed) = match state
        .runner
        .enqueue_manual(&new_run, key.as_ref(), limits)
        .await?
    {
        Enqueued::New(run) => (*run, false),
        Enqueued::Repeat {
            same_request: false,
            ..
        } => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request (another script, \
                 handler or payload); use a new key for a new request",
            ));
        }
        Enqueued::Repeat { run_id, .. } => {
            let run = state
                .store
                .get_run(&user.id, &run_id)
                .await?
                .ok_or_else(|| ApiError::not_found("run"))?;
            (run, true)
        }
    };
    // Answers to a request with a key say whether they repeat an earlier one.
    let mut replayed_header = HeaderMap::new();
    if key.is_some() {
        let value = if replayed { "true" } else { "false" };
        replayed_header.insert(REPLAYED_HEADER, header::HeaderValue::from_static(value));
    }
    let replayed = replayed_header;
    let Some(wait_slot) = wait_slot else {
        return Ok((
            StatusCode::ACCEPTED,
            replayed,
            Json(json!({ "run_id": run.id, "status": run.status })),
        ));
    };
    let timeout = Duration::from_secs(query.timeout.unwrap_or(60).min(600));
    let run = state
        .runner
        .wait(&wait_slot, &user.id, &run.id, timeout)
        .await?;
    let logs = state
        .store
        .run_logs(&user.id, &run.id)
        .await?
        .unwrap_or_default();
    let status = if run.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let method_calls = method_calls(&state, &run.id).await?;
    Ok((
        status,
        replayed,
        Json(json!({
            "run_id": run.id,
            "status": run.status,
            "run": run,
            "method_calls": method_calls,
            "stdout": String::from_utf8_lossy(&logs.stdout),
            "stderr": String::from_utf8_lossy(&logs.stderr),
        })),
    ))
}

/// Says whether a response answers a repeat of an earlier request.
const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The request's `Idempotency-Key`, if it has one, with a hash of what it
/// asks for: the script, the handler and the payload.
fn idempotency_key(
    headers: &HeaderMap,
    script_id: &str,
    body: &RunBody,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| {
            !key.is_empty()
                && key.chars().count() <= MAX_IDEMPOTENCY_KEY_CHARS
                && key.chars().all(|c| c.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                format!(
                    "Idempotency-Key takes 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII \
                     characters without spaces (a UUID, for example)"
                ),
            )
        })?;
    let mut hash = Sha256::new();
    for part in [
        script_id,
        body.handler.as_deref().unwrap_or(""),
        &body.payload.to_string(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    Ok(Some(IdempotencyKey {
        key: key.to_string(),
        request_hash: hex::encode(hash.finalize()),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    script_id: Option<String>,
    status: Option<String>,
    before: Option<i64>,
    since: Option<i64>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let status = match query.status.as_deref().map(str::parse::<RunStatus>) {
        Some(Err(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_status",
                format!("unknown status `{}`", query.status.unwrap_or_default()),
            )
            .with_details(json!({ "statuses": RunStatus::ALL })));
        }
        Some(Ok(status)) => Some(status),
        None => None,
    };
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let filter = RunFilter {
        script_id: query.script_id,
        status,
        before: query.before,
        since: query.since,
        after: super::paging::parse_cursor(query.cursor.as_deref())?,
        limit,
    };
    let runs = state.store.list_runs(&user.id, &filter).await?;
    let next_cursor = super::paging::next_cursor(&runs, limit, |x| (x.queued_at, &x.id));
    Ok(Json(json!({ "runs": runs, "next_cursor": next_cursor })))
}

async fn one(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let run = state
        .store
        .get_run(&user.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    // The run is the user's (checked above), so its calls are too.
    let method_calls = method_calls(&state, &run.id).await?;
    Ok(Json(json!({ "run": run, "method_calls": method_calls })))
}

async fn logs(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let run = state
        .store
        .get_run(&user.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    let logs = state
        .store
        .run_logs(&user.id, &id)
        .await?
        .unwrap_or_default();
    let mut text = String::new();
    for (name, bytes, truncated) in [
        ("stdout", &logs.stdout, run.stdout_truncated),
        ("stderr", &logs.stderr, run.stderr_truncated),
    ] {
        text.push_str(&format!(
            "--- {name} ---\n{}",
            String::from_utf8_lossy(bytes)
        ));
        if !text.ends_with('\n') {
            text.push('\n');
        }
        if truncated {
            text.push_str(&format!(
                "[roost: output truncated at {} bytes]\n",
                run.output_cap.unwrap_or_default()
            ));
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

async fn cancel(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let run = state
        .store
        .get_run(&user.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    if state.store.cancel_run(&user.id, &id).await? {
        Ok(Json(
            json!({ "run_id": id, "status": RunStatus::Cancelled }),
        ))
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_finished",
            format!("the run already ended ({})", run.status),
        ))
    }
}

/// A run's host-mediated calls as the API shows them: each record with
/// `retries`, the requests beyond the first.
async fn method_calls(state: &AppState, run_id: &str) -> Result<Vec<serde_json::Value>, ApiError> {
    let calls = state.store.method_calls(run_id).await?;
    Ok(calls
        .iter()
        .map(|call| {
            let mut shown = json!(call);
            shown["retries"] = json!((call.attempts - 1).max(0));
            shown
        })
        .collect())
}
