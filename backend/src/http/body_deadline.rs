//! A deadline for a request's whole body: a client that sends its body a
//! byte at a time (as an unauthenticated one can, at the Slack webhook or
//! the setup form) is answered 408 instead of holding a connection and a
//! task for as long as it likes. Bodies are read here, within the size
//! limit, and handed on whole; every route reads its body whole anyway.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Reads `request`'s body within `deadline` and at most `max_bytes`, then
/// runs the rest of the stack with it.
pub(super) async fn read_within(
    request: Request,
    next: Next,
    deadline: Duration,
    max_bytes: usize,
) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, max_bytes)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => super::json_errors::body_too_large(max_bytes).into_response(),
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s; send it at once",
                deadline.as_secs()
            ),
        )
        .into_response(),
    }
}
