//! Turning a template into a page, and the headers every dashboard answer
//! carries.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// Scripts and styles only from roost itself, no inline code, no frames,
/// forms only to roost: a value that slipped through escaping still could
/// not run.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// `template` as a page with `status`.
pub(crate) fn page<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "a dashboard template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>roost</title><p>This page could not be shown.</p>"),
            )
                .into_response()
        }
    }
}

/// `template` as a 200 page.
pub(crate) fn ok<T: Template>(template: &T) -> Response {
    page(StatusCode::OK, template)
}

/// Adds the dashboard's security headers to every answer it gives.
pub(crate) async fn secure_headers(mut response: Response) -> Response {
    add_security_headers(&mut response);
    response
}

/// The dashboard's security headers, on one answer.
pub(crate) fn add_security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // Pages show a user's data: no shared cache may keep them.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
