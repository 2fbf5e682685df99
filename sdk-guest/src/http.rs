//! Plain outbound HTTP from a script, over `wasi:http`.
//!
//! roost only lets a script reach the hosts of the integrations it declared;
//! a request anywhere else fails with [`HttpError::Denied`] without leaving
//! the host. Typed integration clients (gmail, slack, …) build on this.

use std::fmt;

use wstd::http::{Body, Client, ErrorCode, Method, Request};

/// A response with its whole body read.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum HttpError {
    /// roost's egress policy refused the destination (host not declared, or
    /// a private address).
    Denied(String),
    /// The request could not be built (bad URL, header).
    Invalid(String),
    /// Network or protocol failure.
    Transport(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(why) => write!(f, "request denied by roost's egress policy: {why}"),
            Self::Invalid(why) => write!(f, "invalid request: {why}"),
            Self::Transport(why) => write!(f, "request failed: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Sends a request and reads the whole response body.
pub fn send(method: &str, url: &str, body: Vec<u8>) -> Result<Response, HttpError> {
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| HttpError::Invalid(e.to_string()))?;
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Body::from(body))
        .map_err(|e| HttpError::Invalid(e.to_string()))?;
    wstd::runtime::block_on(async move {
        let response = Client::new().send(request).await.map_err(classify)?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let bytes = body.contents().await.map_err(classify)?.to_vec();
        Ok(Response { status, body: bytes })
    })
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    send("GET", url, Vec::new())
}

fn classify(err: wstd::http::Error) -> HttpError {
    match err.downcast_ref::<ErrorCode>() {
        Some(code @ (ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited)) => {
            HttpError::Denied(format!("{code:?}"))
        }
        Some(code) => HttpError::Transport(format!("{code:?}")),
        None => HttpError::Transport(format!("{err:#}")),
    }
}
