//! Outbound HTTP from a script, over `wasi:http`.
//!
//! roost only lets a script reach the hosts of the integrations it declared;
//! a request anywhere else fails with [`HttpError::Denied`] without leaving
//! the host.
//!
//! Two levels:
//! - [`get`] and [`send`]: plain requests to a full URL, no credentials.
//! - [`init!`](crate::http::init): a [`Client`] for an integration roost
//!   knows but the SDK has no typed module for (a niche API with an API key):
//!   it declares the integration, and adds the user's credential and the
//!   integration's base URL to every request.
//!
//! Outside `wasm32` (host builds, docs, tests) every request fails with
//! [`HttpError::Transport`]: scripts only reach the network inside roost.

mod client;
mod query;
mod transport;

use std::fmt;

#[doc(inline)]
pub use crate::__http_init as init;
pub use client::Client;
pub use query::Query;

/// A response with its whole body read.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Why a request failed before any response arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    send("GET", url, &[], &[])
}

/// Sends a request to an absolute `http(s)` URL and reads the whole response
/// body. Any status is a response; only failures to get one are errors.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpError> {
    transport::send(method, url, headers, body)
}
