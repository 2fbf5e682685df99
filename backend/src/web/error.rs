//! What a dashboard request can end in besides its page: each an HTML page
//! that says what happened and what to do, or a redirect to sign in.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

/// Why a dashboard request got no page.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebError {
    /// No session, or an expired one: sign in, then come back to `next`.
    #[error("sign in first")]
    SignedOut { next: String },
    /// The browser says the request came from another site.
    #[error("this form was sent from another site; roost only takes its own pages' forms")]
    CrossSite,
    /// The form's token is missing or not this session's.
    #[error(
        "this form has expired or did not come from this dashboard; reload the page and send it again"
    )]
    CsrfToken,
    /// The form could not be read.
    #[error("the form could not be read: {0}")]
    BadForm(String),
    /// Input that is not what the page asked for.
    #[error("{0}")]
    BadRequest(String),
    /// More than roost keeps.
    #[error("{0}")]
    TooLarge(String),
    /// The user has no such thing.
    #[error("no such {0}")]
    NotFound(String),
    /// The request is fine, but the state of things refuses it.
    #[error("{0}")]
    Conflict(String),
    /// Something broke on roost's side (logged, not shown).
    #[error("roost could not answer this page; try again in a moment")]
    Internal(String),
}

impl From<StoreError> for WebError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::QueueFull { .. }
            | StoreError::PayloadQuotaFull { .. }
            | StoreError::ScriptQuota { .. } => Self::Conflict(format!(
                "{err}; wait for queued runs to finish, or ask the operator for a larger quota"
            )),
            err => Self::Internal(err.to_string()),
        }
    }
}

impl WebError {
    /// Why a run started from a page was not.
    pub(crate) fn from_manual(err: crate::triggers::ManualRunError) -> Self {
        use crate::triggers::ManualRunError;
        match err {
            ManualRunError::NoScript => Self::NotFound("script".into()),
            ManualRunError::RunGone => Self::NotFound("run".into()),
            ManualRunError::Store(err) => err.into(),
            err => Self::BadRequest(err.to_string()),
        }
    }
}

impl From<crate::scripts::ScriptError> for WebError {
    fn from(err: crate::scripts::ScriptError) -> Self {
        use crate::scripts::ScriptError;
        match err {
            ScriptError::NotFound(what) => Self::NotFound(what),
            ScriptError::InvalidPolicy { .. } => Self::BadRequest(err.to_string()),
            ScriptError::Store(err) => err.into(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            Self::SignedOut { next } => {
                // Only a path of this site is a place to come back to.
                let back = if next.starts_with('/') && !next.starts_with("//") {
                    format!("?next={}", urlencode(next))
                } else {
                    String::new()
                };
                return (
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, format!("/signin{back}"))],
                )
                    .into_response();
            }
            Self::CrossSite | Self::CsrfToken => (StatusCode::FORBIDDEN, "Form refused"),
            Self::BadForm(_) | Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "Not understood"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "Too large"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "Not done"),
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "a dashboard page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong")
            }
        };
        let page = ErrorPage {
            title,
            message: self.to_string(),
        };
        super::render::page(status, &page)
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(crate) fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
