//! `/v1/credentials`: store API keys and tokens, see what is connected,
//! disconnect. Values go in and never come out.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, AuthUser};
use super::{ApiError, AppState};

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource(
        "credentials",
        OpenApiRouter::new()
            .routes(routes!(list))
            .routes(routes!(store, remove)),
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PutCredentials {
    /// Credential key → value, as the integration's spec names them.
    values: BTreeMap<String, String>,
}

/// Stores an integration's API keys or tokens (replacing any before).
#[utoipa::path(
    put,
    path = "/v1/credentials/{integration}",
    params(("integration" = String, Path, description = "Integration id")),
    request_body = PutCredentials,
    responses((status = 200, description = "`{integration, keys, status: \"connected\"}`", body = Object))
)]
async fn store(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(integration): Path<String>,
    ApiJson(body): ApiJson<PutCredentials>,
) -> Result<impl IntoResponse, ApiError> {
    let definition = state.registry.get(&integration).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_integration",
            format!("no integration `{integration}`"),
        )
        .with_details(json!({ "known": state.registry.ids() }))
    })?;
    state
        .credentials
        .put(&user.id, definition, &body.values, None)
        .await?;
    Ok(Json(
        json!({ "integration": integration, "keys": body.values.keys().collect::<Vec<_>>(), "status": "connected" }),
    ))
}

/// Which integrations are connected, and how they are; never values.
#[utoipa::path(
    get,
    path = "/v1/credentials",
    responses((status = 200, description = "`{credentials: [...]}`", body = Object))
)]
async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({ "credentials": state.credentials.connected(&user.id).await? }),
    ))
}

/// Disconnects an integration: deletes its stored credentials.
#[utoipa::path(
    delete,
    path = "/v1/credentials/{integration}",
    params(("integration" = String, Path, description = "Integration id")),
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(integration): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if state.credentials.delete(&user.id, &integration).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(&format!(
            "credentials for `{integration}`"
        )))
    }
}
