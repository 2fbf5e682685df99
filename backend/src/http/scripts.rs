//! `/v1/scripts`: deploy, list, inspect versions, roll back, delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiJson, AuthUser};
use super::{ApiError, AppState};
use crate::api::Deployed;
use crate::deploy::{DeclaredMetadata, DeployRequest};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/scripts/deploy", post(deploy))
        .route("/v1/scripts", get(list))
        .route("/v1/scripts/{id}", get(one).delete(remove))
        .route("/v1/scripts/{id}/versions", get(versions))
        .route("/v1/scripts/{id}/rollback", post(rollback))
        .route("/v1/scripts/{id}/schedules", get(schedules))
        .route(
            "/v1/scripts/{id}/schedules/{handler}",
            axum::routing::patch(update_schedule),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployBody {
    pub(crate) name: String,
    /// The component, base64 (standard alphabet).
    pub(crate) component: String,
    #[serde(default)]
    pub(crate) metadata: DeclaredMetadata,
    /// Retry policy: `{"max": 0..=10, "on_limits": bool}`.
    retries: Option<crate::store::RetryPolicy>,
    /// Run limits within the server's maxima: `{"timeout_ms", "memory_bytes", "output_bytes"}`.
    limits: Option<crate::store::ScriptLimits>,
}

async fn deploy(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<DeployBody>,
) -> Result<impl IntoResponse, ApiError> {
    let component = base64::engine::general_purpose::STANDARD
        .decode(body.component.trim())
        .map_err(|err| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_base64",
                format!("`component` must be standard base64: {err}"),
            )
        })?;
    let request = DeployRequest {
        name: body.name,
        component,
        declared: body.metadata,
        retries: body.retries,
        limits: body.limits,
    };
    let version = state.deploy.deploy(&user.id, request).await?;
    Ok((StatusCode::CREATED, Json(deployed(version))))
}

/// What a deploy answers (REST and MCP), with what a user should know
/// before the script runs with their accounts.
pub(crate) fn deployed(version: crate::store::ScriptVersion) -> Deployed {
    let notices: Vec<String> = version.metadata["refresh_tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str())
        .map(|id| {
            format!(
                "this script gets `{id}`'s refresh token, which lasts until you revoke roost's \
                 access at the provider; roost refreshes tokens itself, so a script rarely needs it"
            )
        })
        .collect();
    Deployed {
        script_id: version.script_id,
        version: version.version,
        content_hash: version.content_hash,
        created_at: version.created_at,
        metadata: version.metadata,
        notices,
    }
}

async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    let scripts = state.scripts.list(&user.id).await?;
    Ok(Json(json!({ "scripts": scripts })))
}

async fn one(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (script, triggers) = state.scripts.get(&user.id, &id).await?;
    Ok(Json(json!({ "script": script, "triggers": triggers })))
}

async fn versions(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let versions = state.scripts.versions(&user.id, &id).await?;
    Ok(Json(json!({ "versions": versions })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    version: i64,
}

async fn rollback(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RollbackBody>,
) -> Result<impl IntoResponse, ApiError> {
    let script = state.scripts.roll_back(&user.id, &id, body.version).await?;
    Ok(Json(json!({ "script": script })))
}

async fn remove(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.scripts.delete(&user.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn schedules(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let schedules = state.scripts.schedules(&user.id, &id).await?;
    Ok(Json(json!({ "schedules": schedules })))
}

async fn update_schedule(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path((id, handler)): Path<(String, String)>,
    ApiJson(patch): ApiJson<crate::store::SchedulePatch>,
) -> Result<impl IntoResponse, ApiError> {
    let schedule = state
        .scripts
        .update_schedule(&user.id, &id, &handler, &patch)
        .await?;
    Ok(Json(json!({ "schedule": schedule })))
}
