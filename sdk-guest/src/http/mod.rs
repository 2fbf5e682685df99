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
//!
//! # Answering requests
//!
//! [`on_http`](crate::on_http) makes a handler answer HTTP requests to a
//! URL roost gives the script: it takes the [`Request`] and returns a
//! [`Response`] (or `Result<Response, E>`).
//!
//! ```no_run
//! use roost_sdk::http::{Request, Response};
//! use roost_sdk::on_http;
//!
//! #[on_http("POST", "/orders", access = "bearer", deadline_ms = 5000, on_deadline = "fail")]
//! fn create_order(request: &Request) -> Result<Response, serde_json::Error> {
//!     let order: serde_json::Value = request.json()?;
//!     Ok(Response::from_json(201, &order).with_header("x-order", "created"))
//! }
//!
//! #[on_http("GET", "/health")]
//! fn health(_request: &Request) -> Response {
//!     Response::from_text(200, "ok")
//! }
//!
//! roost_sdk::main!(create_order, health);
//! ```
//!
//! The response reaches the caller when the run ends successfully: roost
//! records it with the run, so a run that fails after the handler returned
//! (its state writes refused, say) answers as a failed run. An `Err` from
//! the handler fails the run and sends no response. The handler's deadline
//! applies to the whole run: past it the caller gets `202 Accepted` with the
//! run's id ([`OnDeadline::Accept`], the default) or `504`
//! ([`OnDeadline::Fail`]), and the run goes on. [`Access`] says who may
//! call.

mod client;
mod query;
mod request;
mod response;
mod serve;
mod transport;

use std::fmt;

#[doc(inline)]
pub use crate::__http_init as init;
pub use client::Client;
pub use query::Query;
pub use request::Request;
pub use response::Response;
pub(crate) use serve::serve;
pub use serve::{Access, IntoResponse, OnDeadline};

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
