//! A deadline for a request's whole body: a client that sends its body a
//! byte at a time (as an unauthenticated one can, at the Slack webhook or
//! the setup form) is answered 408 instead of holding a connection and a
//! task for as long as it likes. Bodies are read here, within the size
//! limit, and handed on whole; every route reads its body whole anyway.
//!
//! A body over the limit is read to its end (within the deadline and
//! `DRAIN_BYTES`) before the 413 goes out: closing a connection with
//! unread bytes makes the kernel reset it, and a client still sending
//! then sees "broken pipe" instead of the answer.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::time::{Instant, timeout_at};

use super::ApiError;

/// How much of a body over the limit is read and thrown away so that its
/// sender hears the 413; past this the connection is closed unread.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// Reads `request`'s body within `deadline` and at most `max_bytes`, then
/// runs the rest of the stack with it.
pub(super) async fn read_within(
    request: Request,
    next: Next,
    deadline: Duration,
    max_bytes: usize,
) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max_bytes.saturating_add(DRAIN_BYTES)) {
        return super::json_errors::body_too_large(max_bytes).into_response();
    }
    match read_body(body, Instant::now() + deadline, max_bytes).await {
        Read::Whole(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Read::TooLarge => super::json_errors::body_too_large(max_bytes).into_response(),
        Read::Broken => ApiError::new(
            StatusCode::BAD_REQUEST,
            "body_incomplete",
            "the request body ended before its declared length or could not be read; send it again",
        )
        .into_response(),
        Read::Late => ApiError::new(
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

enum Read {
    Whole(Bytes),
    TooLarge,
    Broken,
    Late,
}

/// The body whole if it ends by `until` within `max_bytes`; a body over
/// the limit is drained (see `DRAIN_BYTES`) and reported too large even
/// when its sender then stalls past the deadline.
async fn read_body(mut body: Body, until: Instant, max_bytes: usize) -> Read {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    loop {
        let frame = match timeout_at(until, body.frame()).await {
            Err(_) if seen > max_bytes => return Read::TooLarge,
            Err(_) => return Read::Late,
            Ok(None) => break,
            Ok(Some(Err(_))) if seen > max_bytes => return Read::TooLarge,
            Ok(Some(Err(_))) => return Read::Broken,
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= max_bytes {
            kept.extend_from_slice(&data);
        } else if seen > max_bytes.saturating_add(DRAIN_BYTES) {
            return Read::TooLarge;
        } else {
            kept = Vec::new();
        }
    }
    if seen > max_bytes {
        Read::TooLarge
    } else {
        Read::Whole(Bytes::from(kept))
    }
}
