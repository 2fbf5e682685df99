//! `POST /v1/events/{type}`: an event runs every one of the user's scripts
//! with an `#[on_event]` handler for its type. `GET /v1/events/{id}`: what
//! an event started.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, AuthUser};
use super::{ApiError, AppState};
use crate::store::NewEvent;
use crate::triggers::{Submitted, valid_type};

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource("events", OpenApiRouter::new().routes(routes!(ingest, one)))
}

/// The envelope, after IONFLUX's platform events: an id for idempotency, the
/// type, when and where it happened, and the payload handlers receive.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Envelope {
    /// Idempotency key; generated when absent.
    id: Option<String>,
    /// Must match the path when given.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// When it happened (informational).
    #[serde(default)]
    #[allow(dead_code)]
    timestamp: Option<String>,
    /// Who sent it.
    source: Option<String>,
    /// What handlers receive.
    #[serde(default)]
    payload: serde_json::Value,
}

/// Posts an event: every script with an `#[on_event]` handler for its type
/// runs. An event id seen before is not run again (`duplicate`).
#[utoipa::path(
    post,
    path = "/v1/events/{event}",
    params(("event" = String, Path, description = "The event type: 1-128 of [A-Za-z0-9._:-]")),
    request_body = Envelope,
    responses((
        status = 202,
        description = "`{event_id, duplicate, run_ids}` (on a cluster `run_ids` is null, with `stream_sequence`)",
        body = Object
    ))
)]
async fn ingest(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(event_type): Path<String>,
    ApiJson(envelope): ApiJson<Envelope>,
) -> Result<impl IntoResponse, ApiError> {
    let event = event_from(user.id.clone(), event_type, envelope)?;
    if let Err(wait) = state.guards.events.check(&user.id) {
        return Err(ApiError::too_many(
            "event_rate_limited",
            format!(
                "more than {} events a minute; retry in {} s",
                state.guards.limits.events_per_minute,
                wait.as_secs().max(1)
            ),
            wait,
        ));
    }
    let event_id = event.event_id.clone();
    let limits = state.guards.limits.queue_limits();
    let body = match state.events.submit(&event, Some(limits)).await? {
        Submitted::Ingested { duplicate, run_ids } => {
            json!({ "event_id": event_id, "duplicate": duplicate, "run_ids": run_ids })
        }
        // On a cluster the runs are made by whichever node consumes it.
        Submitted::Published {
            duplicate,
            sequence,
        } => json!({
            "event_id": event_id, "duplicate": duplicate, "run_ids": null,
            "stream_sequence": sequence,
        }),
    };
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// The event an envelope posted to `/v1/events/{event_type}` describes, or
/// why it is refused. Pure (the fuzz target `event_envelope` drives it).
pub(crate) fn event_from(
    user_id: String,
    event_type: String,
    envelope: Envelope,
) -> Result<NewEvent, ApiError> {
    if !valid_type(&event_type) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_event_type",
            "event types are 1-128 of [A-Za-z0-9._:-], with no empty dot-separated part",
        ));
    }
    if let Some(stated) = &envelope.event_type
        && *stated != event_type
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "event_type_mismatch",
            format!("the body says `{stated}` but the path says `{event_type}`"),
        ));
    }
    let event_id = match envelope.id {
        Some(id) if id.is_empty() || id.len() > 200 => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_event_id",
                "an event id is 1-200 characters",
            ));
        }
        Some(id) => id,
        None => crate::store::new_id("evt"),
    };
    Ok(NewEvent {
        user_id,
        event_id,
        event_type,
        source: envelope.source,
        payload: envelope.payload,
        source_run_id: None,
        chain_depth: 0,
    })
}

/// What an event started (within the idempotency window).
#[utoipa::path(
    get,
    path = "/v1/events/{event}",
    params(("event" = String, Path, description = "The event id")),
    responses((status = 200, description = "The event and its runs", body = Object))
)]
async fn one(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(event_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let event = state
        .events
        .get(&user.id, &event_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "event (not yet turned into runs, or older than the idempotency window)",
            )
        })?;
    Ok(Json(event))
}
