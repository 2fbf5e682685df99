//! Manual runs and run history: `POST /v1/scripts/{id}/run`, `/v1/runs…`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, AuthUser, parse_json};
use super::{ApiError, AppState};
use crate::api::RunPage;
use crate::queue::Cancelled;
use crate::store::{MethodCallRow, RunFilter, RunStatus};
use crate::triggers::{ManualRequest, ManualRunError};

/// Most runs one page returns.
const MAX_PAGE: i64 = 200;

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource(
        "runs",
        OpenApiRouter::new()
            .routes(routes!(start))
            .routes(routes!(list))
            .routes(routes!(one))
            .routes(routes!(logs))
            .routes(routes!(cancel)),
    )
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RunBody {
    /// The handler to run; needed when the script has more than one.
    handler: Option<String>,
    /// What the handler receives.
    #[serde(default)]
    payload: serde_json::Value,
    /// Not before this time (RFC 3339).
    run_at: Option<String>,
    /// Not before this long from now (`"10m"`, or seconds).
    delay: Option<serde_json::Value>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct WaitQuery {
    /// Answer when the run ends (or the timeout passes) instead of at once.
    #[serde(default)]
    wait: bool,
    /// Longest wait in seconds (default 60).
    timeout: Option<u64>,
}

/// Longest `Idempotency-Key`, in characters.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// Starts a run of a script's handler, now or at a time. An
/// `Idempotency-Key` header makes a retry of the request answer the same run
/// (marked `Idempotent-Replayed: true`).
#[utoipa::path(
    post,
    path = "/v1/scripts/{id}/run",
    params(
        ("id" = String, Path, description = "Script id"),
        WaitQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 printable ASCII characters")
    ),
    request_body(content = Option<RunBody>, description = "Optional: no body runs the only handler with no payload"),
    responses(
        (status = 202, description = "Queued (or still running after `wait`): `{run_id, status, not_before}`", body = Object),
        (status = 200, description = "With `wait`, the run ended: `{run_id, status, run, method_calls, stdout, stderr}`", body = Object)
    )
)]
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
    let not_before = super::run_at::not_before(
        body.run_at.as_deref(),
        body.delay.as_ref(),
        crate::store::now_millis(),
    )?;
    if not_before.is_some() && query.wait {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_run_at",
            "a run at a time cannot be waited on (`wait`); follow it with GET /v1/runs/{id}",
        ));
    }
    let request = ManualRequest {
        idempotency_key: idempotency_key(&headers)?,
        handler: body.handler,
        payload: body.payload,
        wait: query
            .wait
            .then(|| Duration::from_secs(query.timeout.unwrap_or(60).min(600))),
        trigger: Default::default(),
        not_before,
    };
    let started = state
        .manual
        .start(&user.id, &id, request)
        .await
        .map_err(manual_run_error)?;
    // Answers to a request with a key say whether they repeat an earlier one.
    let mut replayed = HeaderMap::new();
    if let Some(repeat) = started.replayed {
        let value = if repeat { "true" } else { "false" };
        replayed.insert(REPLAYED_HEADER, header::HeaderValue::from_static(value));
    }
    let run = started.run;
    let Some(output) = started.waited else {
        return Ok((
            StatusCode::ACCEPTED,
            replayed,
            Json(json!({ "run_id": run.id, "status": run.status, "not_before": run.not_before })),
        ));
    };
    let status = if run.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        replayed,
        Json(json!({
            "run_id": run.id,
            "status": run.status,
            "method_calls": shown_calls(&output.method_calls),
            "run": run,
            "stdout": String::from_utf8_lossy(&output.logs.stdout),
            "stderr": String::from_utf8_lossy(&output.logs.stderr),
        })),
    ))
}

/// The API's answer to a manual run that was not started.
pub(crate) fn manual_run_error(err: ManualRunError) -> ApiError {
    let message = err.to_string();
    match err {
        ManualRunError::NoScript => ApiError::not_found("script"),
        ManualRunError::RunGone => ApiError::not_found("run"),
        ManualRunError::UnknownHandler { handlers, .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "unknown_handler", message)
                .with_details(json!({ "handlers": handlers }))
        }
        ManualRunError::HandlerRequired { handlers } => {
            ApiError::new(StatusCode::BAD_REQUEST, "handler_required", message)
                .with_details(json!({ "handlers": handlers }))
        }
        ManualRunError::TooManyWaits(_) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_waits",
            format!(
                "{message}; start this run without `wait` and follow it with \
                 GET /v1/runs/{{id}}, or wait for one to answer"
            ),
        ),
        ManualRunError::KeyReused => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different request (another script, \
             handler or payload); use a new key for a new request",
        ),
        ManualRunError::Store(err) => err.into(),
    }
}

/// Says whether a response answers a repeat of an earlier request.
const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The request's `Idempotency-Key`, if it has one.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
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
    Ok(Some(key.to_string()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only this script's runs.
    script_id: Option<String>,
    /// Only runs with this status (`queued`, `running`, `succeeded`…).
    status: Option<String>,
    /// Queued before this time (Unix ms).
    before: Option<i64>,
    /// Queued at or after this time (Unix ms).
    since: Option<i64>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// Runs per page, 1-200 (default 50).
    limit: Option<i64>,
}

/// The user's runs, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/runs",
    params(ListQuery),
    responses((status = 200, description = "A page of runs", body = RunPage))
)]
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
    let runs = state.runs.list(&user.id, &filter).await?;
    let next_cursor = super::paging::next_cursor(&runs, limit, |x| (x.queued_at, &x.id));
    Ok(Json(RunPage { runs, next_cursor }))
}

/// A run and its integration calls.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "`{run, method_calls}`", body = Object))
)]
async fn one(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (run, calls) = state
        .runs
        .get(&user.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    Ok(Json(
        json!({ "run": run, "method_calls": shown_calls(&calls) }),
    ))
}

/// A run's stdout and stderr, as text.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}/logs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "`--- stdout ---` and `--- stderr ---` sections", body = String, content_type = "text/plain"))
)]
async fn logs(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (run, logs) = state
        .runs
        .logs(&user.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        logs_text(&run, &logs),
    ))
}

/// A run's output as `GET /v1/runs/{id}/logs` (and the MCP tool) shows it.
pub(crate) fn logs_text(run: &crate::store::RunRow, logs: &crate::store::RunLogs) -> String {
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
    text
}

/// Cancels a queued or running run.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/cancel",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "`{run_id, status: \"cancelled\"}`", body = Object))
)]
async fn cancel(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    match state.runs.cancel(&user.id, &id).await? {
        None => Err(ApiError::not_found("run")),
        Some(Cancelled::Now) => Ok(Json(
            json!({ "run_id": id, "status": RunStatus::Cancelled }),
        )),
        Some(Cancelled::AlreadyEnded(status)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_finished",
            format!("the run already ended ({status})"),
        )),
    }
}

/// A run's host-mediated calls as the API shows them: each record with
/// `retries`, the requests beyond the first.
fn shown_calls(calls: &[MethodCallRow]) -> Vec<serde_json::Value> {
    calls
        .iter()
        .map(|call| {
            let mut shown = json!(call);
            shown["retries"] = json!((call.attempts - 1).max(0));
            shown
        })
        .collect()
}
