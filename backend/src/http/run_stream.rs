//! `GET /v1/runs/{id}/stream`: a run as it goes, as server-sent events.
//! `status` whenever its status changes, `output` as output arrives
//! (`{"stream","offset","text"}`, or `{"stream","reset":true,"text"}`
//! with the whole output when it no longer extends what was sent), and
//! `end` once it has ended, after which the stream closes. What the events
//! say, and how often the run is read, is the queue's (queue/follow.rs).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::StreamExt as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::AuthUser;
use super::{ApiError, AppState};
use crate::queue::follow::RunEvent;

/// A comment this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource("runs", OpenApiRouter::new().routes(routes!(stream)))
}

/// A run as it goes, as server-sent events: `status`, `output`
/// (`{stream, offset, text}`), and `end`, after which the stream closes.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}/stream",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "Server-sent events", body = String, content_type = "text/event-stream"))
)]
async fn stream(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let events = state
        .runs
        .follow(&user.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    let events = events.map(|event| Ok::<_, Infallible>(sse_event(&event)));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

fn sse_event(event: &RunEvent) -> Event {
    let (name, data) = match event {
        RunEvent::Status(state) => ("status", serde_json::to_string(state)),
        RunEvent::Output(chunk) => ("output", serde_json::to_string(chunk)),
        RunEvent::End(state) => ("end", serde_json::to_string(state)),
    };
    // Plain data structs: serialising them cannot fail.
    Event::default()
        .event(name)
        .data(data.unwrap_or_else(|_| "{}".into()))
}
