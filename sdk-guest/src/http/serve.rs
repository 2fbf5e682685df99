//! Answering HTTP requests: the run wrapper of [`on_http`](crate::on_http)
//! handlers and the declared options of their trigger.
//!
//! The handler's [`Response`] is handed to roost
//! (`POST http://roost.internal/v1/http/response`) as soon as the handler
//! returns, before the run's state writes are sent; roost records it with
//! the run and gives it to the caller only when the run ends successfully.
//! A run that fails afterwards (its state writes refused, say) answers as a
//! failed run, never with the recorded response.

use base64::Engine as _;
use serde::Deserialize;

use super::{Request, Response};
use crate::{Error, Invocation};

/// Who may call an [`on_http`](crate::on_http) handler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone who has the handler's URL: its path carries an unguessable
    /// segment, so the URL is the secret. Hand it only to who should call.
    #[default]
    Public,
    /// Only a caller sending a roost API token of the script's owner in
    /// `Authorization: Bearer …`. roost checks the token and removes the
    /// header: the script never sees it.
    Bearer,
    /// Only a caller that signs each request with a secret its owner set
    /// (`PUT /v1/scripts/{id}/http/{handler}/secret`): `X-Roost-Timestamp`
    /// (Unix seconds, within 5 minutes of roost's clock) and
    /// `X-Roost-Signature: v1=<hex HMAC-SHA256 of "{timestamp}.{body}">`.
    Hmac,
}

/// What the caller gets when an [`on_http`](crate::on_http) handler's
/// deadline passes before the run ended. Either way the run goes on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDeadline {
    /// `202 Accepted` with the run's id, to look the run up later.
    #[default]
    Accept,
    /// `504 Gateway Timeout`.
    Fail,
}

/// What an [`on_http`](crate::on_http) handler may return: a [`Response`],
/// or `Result<Response, E>` where an `Err` fails the run (and the caller
/// gets roost's answer for a failed run).
#[diagnostic::on_unimplemented(
    message = "an #[on_http] handler returns `roost_sdk::http::Response` or \
               `Result<roost_sdk::http::Response, E: Display>`, not `{Self}`"
)]
pub trait IntoResponse {
    /// The response, or why the handler failed.
    fn into_response(self) -> Result<Response, Error>;
}

impl IntoResponse for Response {
    fn into_response(self) -> Result<Response, Error> {
        Ok(self)
    }
}

impl<E: std::fmt::Display> IntoResponse for Result<Response, E> {
    fn into_response(self) -> Result<Response, Error> {
        self.map_err(Error::msg)
    }
}

/// Where the handler's response goes.
const RESPONSE_PATH: &str = "/v1/http/response";

/// Runs an HTTP handler: reads the request from the invocation, calls the
/// handler and hands its response to roost. The body of the `run` that
/// [`on_http`](crate::on_http) generates.
pub(crate) fn serve<F, R>(invocation: &Invocation, handler: F) -> crate::Result
where
    F: FnOnce(&Request) -> R,
    R: IntoResponse,
{
    let request = Request::from_invocation(invocation)?;
    let response = handler(&request).into_response()?;
    send_response(&response)
}

/// The JSON roost takes for a response:
/// `{"status", "headers": [[name, value], …], "body_base64"}`.
fn wire(response: &Response) -> Vec<u8> {
    let body = serde_json::json!({
        "status": response.status,
        "headers": response.headers,
        "body_base64": base64::engine::general_purpose::STANDARD.encode(&response.body),
    });
    serde_json::to_vec(&body).expect("strings and numbers serialise")
}

fn send_response(response: &Response) -> crate::Result {
    crate::internal::post(RESPONSE_PATH, &wire(response), "the HTTP response").map(drop)
}

/// `#[on_http]` refuses, at compile time:
///
/// - a lower-case method:
///
/// ```compile_fail
/// use roost_sdk::http::{Request, Response};
/// #[roost_sdk::on_http("post", "/a")]
/// fn h(_request: &Request) -> Response {
///     Response::new(200)
/// }
/// ```
///
/// - a method roost does not route:
///
/// ```compile_fail
/// use roost_sdk::http::{Request, Response};
/// #[roost_sdk::on_http("TRACE", "/a")]
/// fn h(_request: &Request) -> Response {
///     Response::new(200)
/// }
/// ```
///
/// - a path without a leading `/`:
///
/// ```compile_fail
/// use roost_sdk::http::{Request, Response};
/// #[roost_sdk::on_http("GET", "a")]
/// fn h(_request: &Request) -> Response {
///     Response::new(200)
/// }
/// ```
///
/// - a path with a query:
///
/// ```compile_fail
/// use roost_sdk::http::{Request, Response};
/// #[roost_sdk::on_http("GET", "/a?b=1")]
/// fn h(_request: &Request) -> Response {
///     Response::new(200)
/// }
/// ```
///
/// - a path with whitespace:
///
/// ```compile_fail
/// use roost_sdk::http::{Request, Response};
/// #[roost_sdk::on_http("GET", "/a b")]
/// fn h(_request: &Request) -> Response {
///     Response::new(200)
/// }
/// ```
///
/// - an unknown access mode:
///
/// ```compile_fail
/// use roost_sdk::http::{Request, Response};
/// #[roost_sdk::on_http("GET", "/a", access = "private")]
/// fn h(_request: &Request) -> Response {
///     Response::new(200)
/// }
/// ```
///
/// - an unknown deadline policy:
///
/// ```compile_fail
/// use roost_sdk::http::{Request, Response};
/// #[roost_sdk::on_http("GET", "/a", on_deadline = "retry")]
/// fn h(_request: &Request) -> Response {
///     Response::new(200)
/// }
/// ```
///
/// - a deadline that is not an integer:
///
/// ```compile_fail
/// use roost_sdk::http::{Request, Response};
/// #[roost_sdk::on_http("GET", "/a", deadline_ms = "5000")]
/// fn h(_request: &Request) -> Response {
///     Response::new(200)
/// }
/// ```
///
/// - a return type that is not a response:
///
/// ```compile_fail
/// use roost_sdk::http::{Request, Response};
/// #[roost_sdk::on_http("GET", "/a")]
/// fn h(_request: &Request) -> u16 {
///     200
/// }
/// ```
///
/// - a handler without the request argument:
///
/// ```compile_fail
/// #[roost_sdk::on_http("GET", "/a")]
/// fn h() -> roost_sdk::http::Response {
///     roost_sdk::http::Response::new(200)
/// }
/// ```
///
/// (The same handler with good arguments builds: see the example in
/// [`crate::http`].)
#[cfg(doctest)]
pub struct OnHttpCompileChecks;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Trigger;

    fn invocation(payload: serde_json::Value) -> Invocation {
        Invocation {
            handler: Some("h".into()),
            trigger: Trigger::Manual,
            payload,
        }
    }

    #[test]
    fn the_wire_form_has_status_headers_and_base64_body() {
        let response = Response::from_text(201, "hi").with_header("X-A", "1");
        let wire: serde_json::Value = serde_json::from_slice(&wire(&response)).unwrap();
        assert_eq!(
            wire,
            json!({
                "status": 201,
                "headers": [["content-type", "text/plain; charset=utf-8"], ["x-a", "1"]],
                "body_base64": "aGk=",
            })
        );
    }

    #[test]
    fn refusals_name_roosts_error() {
        let answer = Response::from_json(
            409,
            &json!({ "error": { "code": "already_answered", "message": "once" } }),
        );
        let refusal = |answer| crate::internal::refusal(answer, "the HTTP response");
        assert_eq!(
            refusal(&answer),
            "roost did not take the HTTP response (409): already_answered: once"
        );
        let garbage = Response::from_text(502, "bad gateway");
        assert!(refusal(&garbage).contains("(502): unknown: no message"));
    }

    #[test]
    fn errors_and_bad_payloads_fail_without_a_response() {
        let payload = json!({
            "method": "GET", "path": "/x", "query": "", "headers": [], "body_base64": "",
        });
        let err = serve(&invocation(payload.clone()), |_| {
            Err::<Response, _>("boom on purpose")
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "boom on purpose");
        let err = serve(&invocation(json!({ "x": 1 })), |_| Response::new(200)).unwrap_err();
        assert!(err.to_string().contains("not an HTTP request"), "{err}");
        // Outside roost the response cannot be handed over: named as such.
        let err = serve(&invocation(payload), |request| {
            Response::from_text(200, request.path.clone())
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("could not hand the HTTP response"),
            "{err}"
        );
    }
}
