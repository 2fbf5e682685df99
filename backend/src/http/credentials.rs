//! `/v1/credentials`: store API keys and tokens, see what is connected,
//! disconnect. Values go in and never come out.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiJson, AuthUser};
use super::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/credentials", get(list))
        .route("/v1/credentials/{integration}", put(store).delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutCredentials {
    /// Credential key → value, as the integration's spec names them.
    values: BTreeMap<String, String>,
}

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

async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({ "credentials": state.credentials.connected(&user.id).await? }),
    ))
}

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
