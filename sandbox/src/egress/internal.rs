//! Requests a guest addresses to roost itself.
//!
//! `http://roost.internal/…` never reaches a network: the egress hook hands
//! such requests to the run's [`HostService`] (when the embedder gave one)
//! and returns its answer as the response. This is how a script talks to
//! services roost provides on the host side (its outbox, for one) without a
//! socket, a token or an address of the server.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{Error, WasiBody};

/// The host name that addresses roost's host services.
pub const INTERNAL_HOST: &str = "roost.internal";

/// Largest request body a host service is handed; bigger ones get 413.
pub const MAX_INTERNAL_BODY: usize = 1024 * 1024;

/// A request to a host service, its body read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRequest {
    /// HTTP method, upper case.
    pub method: String,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// A host service's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostResponse {
    /// HTTP status.
    pub status: u16,
    /// `content-type` of the body.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl HostResponse {
    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json".into(),
            body: body.to_string().into_bytes(),
        }
    }
}

/// The future a host service answers with.
pub type HostFuture = Pin<Box<dyn Future<Output = HostResponse> + Send>>;

/// What answers a run's requests to [`INTERNAL_HOST`]. One per run, so it
/// knows whose run it serves without trusting anything the guest says.
pub trait HostService: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: HostRequest) -> HostFuture;

    /// Told the status of each answer the run got from an outside host
    /// (the host and port the request went to), before the guest reads it:
    /// what roost knows of the run's calls without trusting the guest's word.
    fn response_seen(&self, _host: &str, _port: u16, _status: u16) {}
}

/// A shareable handle, so policies stay `Clone` and `Debug`.
#[derive(Clone)]
pub(crate) struct HostServiceHandle(pub(crate) Arc<dyn HostService>);

impl fmt::Debug for HostServiceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostService")
    }
}

/// Whether `host` (as the guest wrote it) addresses roost itself.
pub(crate) fn is_internal(host: &str) -> bool {
    host.trim_end_matches('.')
        .eq_ignore_ascii_case(INTERNAL_HOST)
}

/// Reads the guest's request, asks the service, and shapes its answer as
/// the response the guest receives.
pub(crate) async fn serve(
    service: &dyn HostService,
    parts: http::request::Parts,
    body: &mut Option<WasiBody>,
) -> Result<http::Response<WasiBody>, Error> {
    let body = body.take().ok_or(Error::InternalError(Some(
        "the request body was already read".into(),
    )))?;
    let body = match Limited::new(body, MAX_INTERNAL_BODY).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => {
            return respond(HostResponse::json(
                413,
                &serde_json::json!({ "error": {
                    "code": "body_too_large",
                    "message": format!("requests to roost take at most {MAX_INTERNAL_BODY} bytes"),
                }}),
            ));
        }
    };
    let request = HostRequest {
        method: parts.method.as_str().to_ascii_uppercase(),
        path: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    respond(service.handle(request).await)
}

fn respond(answer: HostResponse) -> Result<http::Response<WasiBody>, Error> {
    let body = Full::new(Bytes::from(answer.body))
        .map_err(|never| match never {})
        .boxed_unsync();
    http::Response::builder()
        .status(answer.status)
        .header(http::header::CONTENT_TYPE, answer.content_type)
        .body(body)
        .map_err(|_| Error::InternalError(Some("a host service gave an invalid response".into())))
}
