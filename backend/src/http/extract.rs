//! Request extractors that answer bad input with an [`ApiError`].

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::auth::hash_token;
use crate::store::User;

/// The user behind the request's `Authorization: Bearer` token.
pub(super) struct AuthUser(pub(super) User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized =
            |code, message: &str| ApiError::new(StatusCode::UNAUTHORIZED, code, message);
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(unauthorized(
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
        let user = match state.known_tokens.get(&token_hash) {
            Some(user) => Some(user),
            None => {
                let found = state.store.user_by_token_hash(&token_hash).await?;
                if let Some(user) = &found {
                    state.known_tokens.remember(&token_hash, user);
                }
                found
            }
        };
        match user {
            Some(user) => {
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
                Ok(Self(user))
            }
            None => Err(unauthorized("invalid_token", "the token is not valid")),
        }
    }
}

/// `Json<T>` whose rejections are API errors with precise codes.
pub(super) struct ApiJson<T>(pub(super) T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                let code = match &rejection {
                    JsonRejection::JsonDataError(_) => "invalid_body",
                    JsonRejection::JsonSyntaxError(_) => "malformed_json",
                    JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
                    JsonRejection::BytesRejection(_)
                        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
                    {
                        "body_too_large"
                    }
                    _ => "invalid_body",
                };
                Err(ApiError::new(
                    rejection.status(),
                    code,
                    rejection.body_text(),
                ))
            }
        }
    }
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
