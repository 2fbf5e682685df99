//! Request extractors that answer bad input with an [`ApiError`].

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::auth::hash_token;
use crate::store::{TokenGrant, User};

/// The user behind the request's `Authorization: Bearer` token, which
/// holds the scope the route needs (see scopes.rs).
pub(crate) struct AuthUser(pub(crate) User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AuthGrant(grant) = AuthGrant::from_request_parts(parts, state).await?;
        Ok(Self(grant.user))
    }
}

/// What the request's token grants (its user and the token), checked
/// against the scope the route needs.
pub(crate) struct AuthGrant(pub(crate) TokenGrant);

impl FromRequestParts<AppState> for AuthGrant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Wrong tokens are counted per client address; an address past the
        // limit is refused before its token is even looked at.
        let client = client_address(parts);
        let failures = &state.guards.auth_failures;
        if let Err(wait) = failures.ready(&client) {
            return Err(auth_throttled(wait));
        }
        let unauthorized = |code, message: &str| {
            let _ = failures.check(&client);
            ApiError::new(StatusCode::UNAUTHORIZED, code, message)
        };
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            // No token at all is not a guess: not counted.
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "send `Authorization: Bearer <token>` (create one with `roost user create`)",
            ));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                // The scheme name is case-insensitive (RFC 9110).
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token)
            })
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                unauthorized(
                    "invalid_token",
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        let token_hash = hash_token(token);
        let grant = state.accounts.grant(&token_hash).await?;
        match grant {
            Some(grant) => {
                // Per token, after authentication: a stranger's bad tokens
                // cannot use up a user's allowance.
                if let Err(wait) = state.guards.api.check(&token_hash) {
                    return Err(ApiError::too_many(
                        "rate_limited",
                        format!(
                            "too many requests with this token; retry in {} s",
                            wait.as_secs().max(1)
                        ),
                        wait,
                    ));
                }
                super::scopes::check(parts, &grant)?;
                Ok(Self(grant))
            }
            None => Err(unauthorized(
                "invalid_token",
                "the token is not valid: unknown, revoked or expired",
            )),
        }
    }
}

/// A request bearing the operator's token (`ROOST_OPERATOR_TOKEN`).
pub(super) struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = &state.operator_token_hash else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "operator_only",
                "this route is the operator's, and this server has no operator token; set \
                 ROOST_OPERATOR_TOKEN (or operator_token in roost.toml) to turn it on",
            ));
        };
        let client = client_address(parts);
        let failures = &state.guards.auth_failures;
        if let Err(wait) = failures.ready(&client) {
            return Err(auth_throttled(wait));
        }
        let given = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| hash_token(token.trim()));
        // Hashes of equal length: comparing them says nothing of the token.
        if given.as_deref() == Some(expected.as_str()) {
            return Ok(Self);
        }
        let _ = failures.check(&client);
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "operator_only",
            "this route takes the operator's token (`Authorization: Bearer <ROOST_OPERATOR_TOKEN>`), \
             not a user's",
        ))
    }
}

/// The address the request came from (empty where the server was not
/// told, as in tests that call the router directly).
/// The address a request came from (its peer), for per-address limits.
pub(crate) fn client_address(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string())
        .unwrap_or_default()
}

fn auth_throttled(wait: std::time::Duration) -> ApiError {
    ApiError::too_many(
        "auth_throttled",
        format!(
            "too many failed authentications from this address; retry in {} s",
            wait.as_secs().max(1)
        ),
        wait,
    )
}

/// A JSON body, read whatever its `Content-Type` says (a bare `curl -d`
/// sends a form type), with rejections as API errors with precise codes.
/// A body over the server's limit is answered by `json_errors`, which
/// knows the limit.
pub(super) struct ApiJson<T>(pub(super) T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        parse_json(&bytes)
            .map(Self)
            .map_err(IntoResponse::into_response)
    }
}

/// `bytes` as JSON: a syntax error is 400 `malformed_json`, a value of the
/// wrong shape 422 `invalid_body`, both saying where (the field's path).
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let (err, path) = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => match deserializer.end() {
            Ok(()) => return Ok(value),
            Err(err) => (err, String::new()),
        },
        Err(err) => {
            let path = err.path().to_string();
            (err.into_inner(), path)
        }
    };
    let (status, code) = if err.is_data() {
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    } else {
        (StatusCode::BAD_REQUEST, "malformed_json")
    };
    let at = if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}: ")
    };
    Err(ApiError::new(
        status,
        code,
        format!("the request body is not valid: {at}{err}"),
    ))
}

/// `Query<T>` whose rejections are API errors (`invalid_query`) naming the
/// parameter, instead of axum's plain-text 400.
pub(super) struct ApiQuery<T>(pub(super) T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                rejection.body_text(),
            )),
        }
    }
}
