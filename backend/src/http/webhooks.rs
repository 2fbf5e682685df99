//! `POST /webhooks/{integration}/{user_id}`: deliveries from the providers
//! whose definitions have a `webhooks` section (see `triggers::webhook`);
//! and which of those URLs a script listens through.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::AuthUser;
use super::{ApiError, AppState};
use crate::triggers::Submitted;
use crate::triggers::webhook::{WebhookAnswer, WebhookError};

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource("webhooks", OpenApiRouter::new().routes(routes!(deliver)))
}

/// `GET /v1/scripts/{id}/webhooks`: the URLs a script's events arrive by.
pub(super) fn listing() -> OpenApiRouter<AppState> {
    super::openapi::resource("webhooks", OpenApiRouter::new().routes(routes!(for_script)))
}

/// The webhook URLs a script's events arrive by.
#[utoipa::path(
    get,
    path = "/v1/scripts/{id}/webhooks",
    params(("id" = String, Path, description = "Script id")),
    responses((status = 200, description = "`{webhooks: [...]}`", body = Object))
)]
async fn for_script(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(script_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let webhooks = state
        .webhooks
        .for_script(&user.id, &script_id)
        .await?
        .ok_or_else(|| ApiError::not_found("script"))?;
    Ok(Json(json!({ "webhooks": webhooks })))
}

/// A provider's delivery (Slack, Shopify, GitHub…), checked by its
/// signature, as an event for the user's scripts. Slack's URL check is
/// answered with its `challenge`.
#[utoipa::path(
    post,
    path = "/webhooks/{integration}/{user_id}",
    params(
        ("integration" = String, Path, description = "Integration id"),
        ("user_id" = String, Path, description = "The user the delivery is for")
    ),
    request_body(content = Object, description = "The provider's payload, as it sends it"),
    responses((
        status = 200,
        description = "`{ok, event_id, duplicate, run_ids}`, or `{challenge}`",
        body = Object
    ))
)]
async fn deliver(
    State(state): State<AppState>,
    Path((integration, user_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let answer = state
        .webhooks
        .receive(&integration, &user_id, &headers, &body)
        .await
        .map_err(webhook_error)?;
    Ok(Json(match answer {
        WebhookAnswer::Challenge(challenge) => json!({ "challenge": challenge }),
        WebhookAnswer::Event {
            event_id,
            submitted: Submitted::Ingested { duplicate, run_ids },
        } => {
            json!({ "ok": true, "event_id": event_id, "duplicate": duplicate, "run_ids": run_ids })
        }
        WebhookAnswer::Event {
            event_id,
            submitted: Submitted::Published { duplicate, .. },
        } => {
            json!({ "ok": true, "event_id": event_id, "duplicate": duplicate, "run_ids": null })
        }
    }))
}

/// The API's answer to a refused delivery.
fn webhook_error(err: WebhookError) -> ApiError {
    use crate::registry::ReadError;
    let message = err.to_string();
    let (status, code) = match err {
        WebhookError::NotFound => return ApiError::not_found("webhook"),
        WebhookError::NotConfigured(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_configured"),
        WebhookError::NoSecret { .. } | WebhookError::NotConnected(_) => {
            (StatusCode::FORBIDDEN, "not_connected")
        }
        WebhookError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
        WebhookError::Unreadable(ReadError::NotJson(_)) => {
            (StatusCode::BAD_REQUEST, "malformed_json")
        }
        WebhookError::Unreadable(ReadError::EventType) => {
            (StatusCode::BAD_REQUEST, "invalid_event_type")
        }
        WebhookError::Unreadable(ReadError::DeliveryId(_)) => {
            (StatusCode::BAD_REQUEST, "invalid_body")
        }
        WebhookError::AccountMismatch => (StatusCode::FORBIDDEN, "account_mismatch"),
        WebhookError::RateLimited { wait, .. } => {
            return ApiError::too_many("event_rate_limited", message, wait);
        }
        WebhookError::Replayed => (StatusCode::CONFLICT, "delivery_replayed"),
        WebhookError::Event(err) => return err.into(),
        WebhookError::Credential(err) => return err.into(),
        WebhookError::Store(err) => return err.into(),
    };
    ApiError::new(status, code, message)
}
