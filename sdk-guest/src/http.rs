//! Plain outbound HTTP from a script, over `wasi:http`.
//!
//! roost only lets a script reach the hosts of the integrations it declared;
//! a request anywhere else fails with [`HttpError::Denied`] without leaving
//! the host. Typed integration clients (gmail, slack, …) build on this.

use std::fmt;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// Largest chunk `blocking-write-and-flush` accepts.
const WRITE_CHUNK: usize = 4096;
/// Read size per `blocking-read`.
const READ_CHUNK: u64 = 64 * 1024;

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

impl From<ErrorCode> for HttpError {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::HttpRequestDenied => Self::Denied("the host is not allowed".into()),
            ErrorCode::DestinationIpProhibited => Self::Denied("the address is not allowed".into()),
            other => Self::Transport(format!("{other:?}")),
        }
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    send("GET", url, &[], &[])
}

/// Sends a request and reads the whole response body.
///
/// The response's outcome takes precedence over a failure to write the
/// request body: when roost refuses a request, the body write fails too, and
/// the refusal is the error worth reporting.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpError> {
    let target = Target::parse(url)?;
    let fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let fields =
        Fields::from_list(&fields).map_err(|e| HttpError::Invalid(format!("header: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let invalid = |what: &str| HttpError::Invalid(what.to_string());
    request
        .set_method(&parse_method(method))
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(&target.scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(&target.authority))
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(Some(&target.path))
        .map_err(|()| invalid("path"))?;
    let outgoing = request.body().map_err(|()| invalid("body"))?;

    let pending = outgoing_handler::handle(request, None)?;
    let write_result = write_body(outgoing, body);

    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(code.into()),
        Some(Err(())) | None => return Err(HttpError::Transport("response already taken".into())),
    };
    write_result?;

    let status = response.status();
    let incoming = response
        .consume()
        .map_err(|()| HttpError::Transport("body already taken".into()))?;
    let stream = incoming
        .stream()
        .map_err(|()| HttpError::Transport("body stream already taken".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(err)) => {
                return Err(HttpError::Transport(err.to_debug_string()));
            }
        }
    }
    Ok(Response {
        status,
        body: bytes,
    })
}

fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), HttpError> {
    {
        let stream = outgoing
            .write()
            .map_err(|()| HttpError::Invalid("body stream".into()))?;
        for chunk in body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| HttpError::Transport(format!("writing the request body: {e:?}")))?;
        }
        // The stream must be dropped before the body is finished.
    }
    OutgoingBody::finish(outgoing, None)?;
    Ok(())
}

fn parse_method(method: &str) -> Method {
    match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    }
}

struct Target {
    scheme: Scheme,
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, HttpError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| HttpError::Invalid(format!("`{url}` is not an absolute http(s) URL")))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => return Err(HttpError::Invalid(format!("unsupported scheme `{other}`"))),
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err(HttpError::Invalid(format!("`{url}` has no host")));
        }
        let path = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(Self {
            scheme,
            authority: authority.to_string(),
            path,
        })
    }
}
