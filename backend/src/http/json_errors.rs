//! Answers that axum writes itself (405 with an empty body, 413 and other
//! extractor rejections as plain text) become the API's JSON error body,
//! so every error a client sees has a code and says what to do. HTML
//! pages, JSON answers and scripts' own HTTP responses pass untouched.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiError;

/// `response`, with a JSON error body if it is a 4xx or 5xx without one.
pub(super) async fn rewrite(response: Response, max_body_bytes: usize) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response
            .extensions()
            .get::<super::endpoints::ScriptAnswer>()
            .is_some()
    {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(content_type.is_empty() || content_type.starts_with("text/plain")) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let error = match status {
        // axum adds the `Allow` header after this layer has run.
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "this route does not take that method; the Allow header lists the ones it does",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => body_too_large(max_body_bytes),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(status, "unsupported_media_type", text),
        _ if status.is_server_error() => ApiError::new(status, "unavailable", text),
        _ => ApiError::new(status, "bad_request", text),
    };
    let mut rewritten = error.into_response();
    // Keep what else the answer said (`Allow`, `Retry-After`…).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

/// 413 for a body over the server's limit, saying the limit.
pub(super) fn body_too_large(max_body_bytes: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body is larger than the {max_body_bytes} bytes this server accepts"),
    )
    .with_details(json!({ "limit_bytes": max_body_bytes }))
}
