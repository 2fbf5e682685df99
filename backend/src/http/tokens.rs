//! API tokens (`/v1/tokens`: a user's own, listed, made and revoked) and
//! users (`/v1/admin/users`: the operator's, with the operator's token).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, AuthGrant, AuthUser, Operator};
use super::{ApiError, AppState};
use crate::accounts::{AccountError, TokenRequest};
use crate::store::Scope;

pub(super) fn router() -> OpenApiRouter<AppState> {
    let tokens = OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke));
    let users = OpenApiRouter::new()
        .routes(routes!(users, create_user))
        .routes(routes!(remove_user))
        .routes(routes!(revoke_all));
    super::openapi::resource("tokens", tokens).merge(super::openapi::resource("admin", users))
}

/// The user's tokens (never their values).
#[utoipa::path(
    get,
    path = "/v1/tokens",
    responses((status = 200, description = "`{tokens: [...]}`", body = Object))
)]
async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    let tokens = state.accounts.tokens(&user.id).await?;
    Ok(Json(json!({ "tokens": tokens })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    name: String,
    /// `["read", "run"]`; absent: the scopes of the token asking.
    scopes: Option<Vec<String>>,
    /// `"30d"`, `"12h"`…; absent: until revoked.
    expires_in: Option<String>,
}

/// Makes a token for the caller, with at most the caller's scopes. Its
/// value is answered once, here.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    request_body = NewTokenBody,
    responses((status = 201, description = "The token's record, with `token`: its value", body = Object))
)]
async fn create(
    State(state): State<AppState>,
    AuthGrant(grant): AuthGrant,
    ApiJson(body): ApiJson<NewTokenBody>,
) -> Result<impl IntoResponse, ApiError> {
    let scopes = body
        .scopes
        .map(|names| Scope::parse_list(&names.join(",")))
        .transpose()
        .map_err(|err| {
            invalid(
                "invalid_scopes",
                format!("{err}; the scopes are read, deploy, run and events"),
            )
        })?;
    let lifetime_ms = body
        .expires_in
        .map(|text| {
            crate::duration::millis(&text).ok_or_else(|| {
                invalid(
                    "invalid_expiry",
                    "`expires_in` is a duration such as \"12h\" or \"30d\"".into(),
                )
            })
        })
        .transpose()?;
    let made = state
        .accounts
        .create_token(
            &grant,
            TokenRequest {
                name: body.name,
                scopes,
                lifetime_ms,
            },
        )
        .await?;
    let mut answer = json!(made.record);
    answer["token"] = json!(made.token);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Revokes one of the user's tokens.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"))
)]
async fn revoke(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.accounts.revoke_token(&user.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every user.
#[utoipa::path(
    get,
    path = "/v1/admin/users",
    responses((status = 200, description = "`{users: [...]}`", body = Object))
)]
async fn users(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<impl IntoResponse, ApiError> {
    let users = state.accounts.users().await?;
    Ok(Json(json!({ "users": users })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    name: String,
}

/// Makes a user, with a first token holding every scope.
#[utoipa::path(
    post,
    path = "/v1/admin/users",
    request_body = NewUserBody,
    responses((status = 201, description = "`{user, token}`", body = Object))
)]
async fn create_user(
    State(state): State<AppState>,
    _operator: Operator,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (user, token) = state.accounts.create_user(&body.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user": user, "token": token })),
    ))
}

/// Deletes a user and everything theirs.
#[utoipa::path(
    delete,
    path = "/v1/admin/users/{id}",
    params(("id" = String, Path, description = "User id")),
    responses((status = 204, description = "Deleted"))
)]
async fn remove_user(
    State(state): State<AppState>,
    _operator: Operator,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.accounts.remove_user(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes every token of a user.
#[utoipa::path(
    delete,
    path = "/v1/admin/users/{id}/tokens",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "`{revoked}`: how many", body = Object))
)]
async fn revoke_all(
    State(state): State<AppState>,
    _operator: Operator,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let revoked = state.accounts.revoke_all(&id).await?;
    Ok(Json(json!({ "revoked": revoked })))
}

fn invalid(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        let message = err.to_string();
        match err {
            AccountError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            AccountError::InvalidName(_) => invalid("invalid_name", message),
            AccountError::InvalidScopes(_) => invalid("invalid_scopes", message),
            AccountError::InvalidExpiry(_) => invalid("invalid_expiry", message),
            AccountError::Escalation(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", message)
            }
            AccountError::TooManyTokens => {
                ApiError::new(StatusCode::CONFLICT, "too_many_tokens", message)
            }
            AccountError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{message}; pick another name"),
            ),
            AccountError::Store(err) => err.into(),
        }
    }
}
