//! The URLs of scripts' HTTP handlers: `/h/{token}{path}`, any method.
//! The request is read (within the body cap), handed to the HTTP trigger
//! service, and the run's response (or what became of the run) answered.
//! Their owner lists them at `GET /v1/scripts/{id}/http`, gives one a
//! new URL with `POST /v1/scripts/{id}/http/{handler}/rotate`, and sets an
//! `hmac` handler's signing secret with `PUT …/{handler}/secret`.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, AuthUser};
use super::{ApiError, AppState};
use crate::triggers::http::{
    HttpOutcome, HttpTriggerError, IncomingRequest, MAX_HTTP_BODY, is_hop_by_hop,
};

/// Marks a response as the script's own, so the API's error rewriting
/// leaves its body alone.
#[derive(Clone, Copy)]
pub(super) struct ScriptAnswer;

/// `path` with an HTTP handler's URL token (the secret of a public
/// handler) replaced, for logs.
pub(super) fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/h/") {
        Some(rest) => {
            let below = rest.find('/').map_or("", |at| &rest[at..]);
            format!("/h/{{token}}{below}").into()
        }
        None => path.into(),
    }
}

/// Scripts' handlers' URLs, with every method (the OpenAPI document lists
/// them by hand: openapi.rs).
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/h/{token}", axum::routing::any(at_root))
        .route("/h/{token}/{*path}", axum::routing::any(below))
}

/// Their owners' routes.
pub(super) fn owners_router() -> OpenApiRouter<AppState> {
    super::openapi::resource(
        "http_handlers",
        OpenApiRouter::new()
            .routes(routes!(list))
            .routes(routes!(rotate))
            .routes(routes!(set_secret)),
    )
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    secret: String,
}

/// Sets an `hmac` handler's signing secret. The secret is never answered
/// back, here or anywhere.
#[utoipa::path(
    put,
    path = "/v1/scripts/{id}/http/{handler}/secret",
    params(
        ("id" = String, Path, description = "Script id"),
        ("handler" = String, Path, description = "An `hmac` HTTP handler")
    ),
    request_body = SecretBody,
    responses((status = 204, description = "Set"))
)]
async fn set_secret(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path((script_id, handler)): Path<(String, String)>,
    ApiJson(body): ApiJson<SecretBody>,
) -> Response {
    match state
        .http_handlers
        .set_secret(&user.id, &script_id, &handler, &body.secret)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(HttpTriggerError::NotFound) => {
            ApiError::not_found("HTTP handler of that script").into_response()
        }
        Err(err) => refusal(err),
    }
}

/// A script's HTTP handlers and their URLs.
#[utoipa::path(
    get,
    path = "/v1/scripts/{id}/http",
    params(("id" = String, Path, description = "Script id")),
    responses((status = 200, description = "`{handlers: [...]}`", body = Object))
)]
async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(script_id): Path<String>,
) -> Response {
    match state.http_handlers.endpoints(&user.id, &script_id).await {
        Ok(endpoints) => axum::Json(json!({ "handlers": endpoints })).into_response(),
        Err(HttpTriggerError::NotFound) => ApiError::not_found("script").into_response(),
        Err(err) => refusal(err),
    }
}

/// Gives a handler a new URL; the old one stops answering.
#[utoipa::path(
    post,
    path = "/v1/scripts/{id}/http/{handler}/rotate",
    params(
        ("id" = String, Path, description = "Script id"),
        ("handler" = String, Path, description = "The HTTP handler")
    ),
    responses((status = 200, description = "The handler with its new URL", body = Object))
)]
async fn rotate(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path((script_id, handler)): Path<(String, String)>,
) -> Response {
    match state
        .http_handlers
        .rotate(&user.id, &script_id, &handler)
        .await
    {
        Ok(endpoint) => axum::Json(endpoint).into_response(),
        Err(HttpTriggerError::NotFound) => {
            ApiError::not_found("HTTP handler of that script").into_response()
        }
        Err(err) => refusal(err),
    }
}

/// A script's HTTP handler at its URL's root: the request runs the
/// handler, and its response is answered (any method; any body). Whether a
/// caller must sign is the handler's (`public` or `hmac`).
#[utoipa::path(
    method(get, post, put, patch, delete, head, options),
    path = "/h/{token}",
    tag = "http_handlers",
    operation_id = "http_handlers_call",
    params(("token" = String, Path, description = "The handler's URL token")),
    request_body(content = Object, description = "Anything; it reaches the script as sent"),
    responses((status = 200, description = "Whatever the script answers (any status and type)"))
)]
pub(super) async fn at_root(
    State(state): State<AppState>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    answer(state, token, request).await
}

/// A script's HTTP handler, below its URL's root (the script sees the rest
/// of the path).
#[utoipa::path(
    method(get, post, put, patch, delete, head, options),
    path = "/h/{token}/{*path}",
    tag = "http_handlers",
    operation_id = "http_handlers_call_below",
    params(
        ("token" = String, Path, description = "The handler's URL token"),
        ("path" = String, Path, description = "The rest of the path; may hold `/`")
    ),
    request_body(content = Object, description = "Anything; it reaches the script as sent"),
    responses((status = 200, description = "Whatever the script answers (any status and type)"))
)]
pub(super) async fn below(
    State(state): State<AppState>,
    Path((token, _)): Path<(String, String)>,
    request: Request,
) -> Response {
    answer(state, token, request).await
}

async fn answer(state: AppState, token: String, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // The path as sent (still percent-encoded), after the token.
    let full = parts.uri.path();
    let path = full
        .strip_prefix("/h/")
        .and_then(|rest| rest.strip_prefix(token.as_str()))
        .filter(|rest| !rest.is_empty())
        .unwrap_or("/")
        .to_string();
    // The body becomes the run's payload: the server's payload limit holds.
    let cap = MAX_HTTP_BODY.min(state.guards.limits.max_payload_bytes);
    let body = match axum::body::to_bytes(body, cap).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("a handler takes a body of at most {cap} bytes"),
            )
            .with_details(json!({ "limit_bytes": cap }))
            .into_response();
        }
    };
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let incoming = IncomingRequest {
        token,
        method: parts.method.as_str().to_string(),
        path,
        query: parts.uri.query().unwrap_or("").to_string(),
        headers,
        body: body.to_vec(),
    };
    match state.http_handlers.call(incoming, bearer.as_deref()).await {
        Ok(outcome) => outcome_response(outcome),
        Err(err) => refusal(err),
    }
}

fn outcome_response(outcome: HttpOutcome) -> Response {
    match outcome {
        HttpOutcome::Answered(reply) => {
            let mut response = Response::new(Body::from(Bytes::from(reply.body)));
            *response.status_mut() =
                StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            for (name, value) in reply.headers {
                if is_hop_by_hop(&name) {
                    continue;
                }
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    response.headers_mut().append(name, value);
                }
            }
            // A script's page runs in an origin of its own, never roost's
            // (whose pages and API it could otherwise read as a visitor).
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox allow-scripts allow-forms allow-popups"),
            );
            response.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            response.extensions_mut().insert(ScriptAnswer);
            response
        }
        HttpOutcome::Accepted { run_id } => (
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "run_id": run_id,
                "message": "the handler did not answer within its deadline; the run goes on, see GET /v1/runs/{run_id}",
            })),
        )
            .into_response(),
        HttpOutcome::DeadlinePassed { run_id } => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "deadline_passed",
            "the handler did not answer within its deadline; the run goes on",
        )
        .with_details(json!({ "run_id": run_id }))
        .into_response(),
        HttpOutcome::NoAnswer { run_id, status } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "handler_failed",
            format!("the handler's run ended {status} without a response; its owner can see why in the run"),
        )
        .with_details(json!({ "run_id": run_id, "status": status.as_str() }))
        .into_response(),
    }
}

fn refusal(err: HttpTriggerError) -> Response {
    match err {
        HttpTriggerError::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no handler answers at this URL",
        )
        .into_response(),
        HttpTriggerError::MethodNotAllowed { allowed } => {
            let mut response = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this URL answers {allowed} only"),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&allowed) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
        HttpTriggerError::Unauthorized => {
            let mut response =
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string())
                    .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        HttpTriggerError::BadSignature(why) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", why).into_response()
        }
        HttpTriggerError::InvalidSecret(why) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_secret", why).into_response()
        }
        HttpTriggerError::RateLimited(wait) => {
            ApiError::too_many("rate_limited", err.to_string(), wait).into_response()
        }
        HttpTriggerError::TooManyWaits(_) => ApiError::too_many(
            "too_many_waiting",
            err.to_string(),
            std::time::Duration::from_secs(1),
        )
        .into_response(),
        HttpTriggerError::Store(err) => ApiError::from(err).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn a_handlers_token_stays_out_of_logged_paths() {
        assert_eq!(loggable_path("/h/hsecret/orders/1"), "/h/{token}/orders/1");
        assert_eq!(loggable_path("/h/hsecret"), "/h/{token}");
        assert_eq!(loggable_path("/v1/runs"), "/v1/runs");
    }
}
