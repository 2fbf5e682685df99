//! `POST /v1/runs/replay`: finished runs, picked by script, status and
//! time, queued again with their payloads (see triggers/replay.rs).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, AuthUser};
use super::{ApiError, AppState};
use crate::api::ReplayAnswer;
use crate::store::RunStatus;
use crate::triggers::replay::MAX_LIMIT;
use crate::triggers::{ReplayError, ReplayRequest};

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource("runs", OpenApiRouter::new().routes(routes!(replay)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    script_id: Option<String>,
    /// One status or a list.
    status: Option<Statuses>,
    /// RFC 3339, or Unix ms.
    #[schema(value_type = Option<Object>)]
    since: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    until: Option<serde_json::Value>,
    #[serde(default)]
    dry_run: bool,
    limit: Option<i64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
enum Statuses {
    One(String),
    Many(Vec<String>),
}

/// Queues finished runs again, with their payloads, picked by script,
/// status and time (`dry_run` says what would be).
#[utoipa::path(
    post,
    path = "/v1/runs/replay",
    request_body = ReplayBody,
    responses(
        (status = 202, description = "Queued", body = ReplayAnswer),
        (status = 200, description = "A dry run: what would be queued", body = ReplayAnswer)
    )
)]
async fn replay(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<ReplayBody>,
) -> Result<impl IntoResponse, ApiError> {
    let statuses = match body.status {
        None => Vec::new(),
        Some(Statuses::One(one)) => vec![status(&one)?],
        Some(Statuses::Many(many)) => many.iter().map(|s| status(s)).collect::<Result<_, _>>()?,
    };
    let request = ReplayRequest {
        script_id: body.script_id,
        statuses,
        since: body.since.as_ref().map(|t| time("since", t)).transpose()?,
        until: body.until.as_ref().map(|t| time("until", t)).transpose()?,
        dry_run: body.dry_run,
        limit: body.limit,
    };
    let done = state
        .replays
        .replay(&user.id, request)
        .await
        .map_err(replay_error)?;
    let code = if body.dry_run {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        code,
        Json(ReplayAnswer {
            dry_run: body.dry_run,
            matched: done.matched,
            queued: done.queued,
            skipped: done.skipped,
        }),
    ))
}

fn status(name: &str) -> Result<RunStatus, ApiError> {
    name.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_status",
            format!("unknown status `{name}`"),
        )
        .with_details(json!({ "statuses": finished() }))
    })
}

/// The statuses a replay takes.
fn finished() -> Vec<RunStatus> {
    RunStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.is_terminal())
        .collect()
}

/// A time given as RFC 3339 or as Unix milliseconds.
fn time(field: &str, value: &serde_json::Value) -> Result<i64, ApiError> {
    let parsed = match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(text) => chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp_millis()),
        _ => None,
    };
    parsed.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_time",
            format!(
                "`{field}` is an RFC 3339 time such as 2026-12-07T09:30:00Z, or Unix milliseconds"
            ),
        )
    })
}

fn replay_error(err: ReplayError) -> ApiError {
    let message = err.to_string();
    let bad = |code| ApiError::new(StatusCode::BAD_REQUEST, code, message.clone());
    match err {
        ReplayError::FilterRequired => bad("filter_required"),
        ReplayError::Unfinished(_) => {
            bad("invalid_status").with_details(json!({ "statuses": finished() }))
        }
        ReplayError::InvalidLimit(_) => {
            bad("invalid_limit").with_details(json!({ "max_limit": MAX_LIMIT }))
        }
        ReplayError::EmptyRange => bad("invalid_range"),
        ReplayError::TooMany { matched, limit } => bad("too_many_runs")
            .with_details(json!({ "matched": matched, "limit": limit, "max_limit": MAX_LIMIT })),
        ReplayError::QueueFull {
            queued,
            incoming,
            limit,
        } => ApiError::too_many("queue_full", message, std::time::Duration::from_secs(1))
            .with_details(json!({ "queued": queued, "incoming": incoming, "limit": limit })),
        ReplayError::Store(err) => err.into(),
    }
}
