//! The bodies roost keeps a copy of with each run they start (events and
//! manual runs) have a limit of their own, well under the server's body
//! limit, which is sized for deploys. The body is already read (see
//! body_deadline.rs), so its size is known here.

use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, AppState};

/// Answers 413 to a body over `max_payload_bytes`; passes the rest on.
pub(super) async fn within(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.guards.limits.max_payload_bytes;
    let size = request.body().size_hint().exact().or_else(|| {
        request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
    });
    if size.is_some_and(|size| size > limit as u64) {
        return too_large(limit).into_response();
    }
    next.run(request).await
}

/// The refusal of a payload over `limit` bytes.
fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the body is larger than the {limit} bytes an event or a run's payload may be; \
             send a reference to the data (a URL, an id) instead of the data"
        ),
    )
    .with_details(json!({ "limit_bytes": limit }))
}

/// The same limit for a payload that came in another envelope (an MCP tool
/// call, whose body is the whole JSON-RPC message): its JSON size counts.
pub(crate) fn check_payload(state: &AppState, payload: &serde_json::Value) -> Result<(), ApiError> {
    let limit = state.guards.limits.max_payload_bytes;
    let size = serde_json::to_vec(payload).map_or(usize::MAX, |bytes| bytes.len());
    if size > limit {
        return Err(too_large(limit));
    }
    Ok(())
}
