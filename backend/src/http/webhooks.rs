//! `POST /webhooks/slack/{user_id}`: Slack's Events API deliveries (see
//! `triggers::webhook`).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::json;

use super::{ApiError, AppState};
use crate::triggers::{SlackAnswer, SlackError, Submitted};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/webhooks/slack/{user_id}", post(slack))
}

async fn slack(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let answer = state
        .slack
        .receive(
            &user_id,
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            &body,
        )
        .await
        .map_err(slack_error)?;
    Ok(Json(match answer {
        SlackAnswer::Challenge(challenge) => json!({ "challenge": challenge }),
        SlackAnswer::Event(Submitted::Ingested { duplicate, run_ids }) => {
            json!({ "ok": true, "duplicate": duplicate, "run_ids": run_ids })
        }
        SlackAnswer::Event(Submitted::Published { duplicate, .. }) => {
            json!({ "ok": true, "duplicate": duplicate, "run_ids": null })
        }
    }))
}

/// The API's answer to a refused Slack delivery.
fn slack_error(err: SlackError) -> ApiError {
    let message = err.to_string();
    let (status, code) = match err {
        SlackError::NotConfigured => (StatusCode::SERVICE_UNAVAILABLE, "not_configured"),
        SlackError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
        SlackError::NotJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
        SlackError::InvalidEventType => (StatusCode::BAD_REQUEST, "invalid_event_type"),
        SlackError::NoEventId => (StatusCode::BAD_REQUEST, "invalid_body"),
        SlackError::NoUser => return ApiError::not_found("user"),
        SlackError::NotConnected => (StatusCode::FORBIDDEN, "slack_not_connected"),
        SlackError::WorkspaceMismatch => (StatusCode::FORBIDDEN, "workspace_mismatch"),
        SlackError::Replayed => (StatusCode::CONFLICT, "delivery_replayed"),
        SlackError::Unsupported(_) => (StatusCode::BAD_REQUEST, "unsupported_event"),
        SlackError::Event(err) => return err.into(),
        SlackError::Store(err) => return err.into(),
    };
    ApiError::new(status, code, message)
}
