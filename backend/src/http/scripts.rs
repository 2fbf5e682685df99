//! `/v1/scripts`: deploy, list, inspect versions, roll back, delete.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, AuthUser};
use super::{ApiError, AppState};
use crate::api::Deployed;
use crate::deploy::{DeclaredMetadata, DeployRequest};

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource(
        "scripts",
        OpenApiRouter::new()
            .routes(routes!(deploy))
            .routes(routes!(list))
            .routes(routes!(one, remove))
            .routes(routes!(versions))
            .routes(routes!(rollback))
            .routes(routes!(schedules))
            .routes(routes!(update_schedule)),
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployBody {
    pub(crate) name: String,
    /// The component, base64 (standard alphabet).
    pub(crate) component: String,
    /// What the component declares (`integrations`, `triggers`); must agree with it.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub(crate) metadata: DeclaredMetadata,
    /// Retry policy: `{"max": 0..=10, "on_limits": bool}`.
    retries: Option<crate::store::RetryPolicy>,
    /// Run limits within the server's maxima: `{"timeout_ms", "memory_bytes", "output_bytes"}`.
    limits: Option<crate::store::ScriptLimits>,
}

/// Stores a new version of the script `name` (the script, if new).
#[utoipa::path(
    post,
    path = "/v1/scripts/deploy",
    request_body = DeployBody,
    responses((status = 201, description = "The version stored", body = Deployed))
)]
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

/// The user's scripts.
#[utoipa::path(
    get,
    path = "/v1/scripts",
    responses((status = 200, description = "`{scripts: [...]}`", body = Object))
)]
async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    let scripts = state.scripts.list(&user.id).await?;
    Ok(Json(json!({ "scripts": scripts })))
}

/// A script with its triggers.
#[utoipa::path(
    get,
    path = "/v1/scripts/{id}",
    params(("id" = String, Path, description = "Script id")),
    responses((status = 200, description = "`{script, triggers}`", body = Object))
)]
async fn one(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (script, triggers) = state.scripts.get(&user.id, &id).await?;
    Ok(Json(json!({ "script": script, "triggers": triggers })))
}

/// Every stored version of a script.
#[utoipa::path(
    get,
    path = "/v1/scripts/{id}/versions",
    params(("id" = String, Path, description = "Script id")),
    responses((status = 200, description = "`{versions: [...]}`", body = Object))
)]
async fn versions(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let versions = state.scripts.versions(&user.id, &id).await?;
    Ok(Json(json!({ "versions": versions })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    version: i64,
}

/// Makes an earlier version the one that runs.
#[utoipa::path(
    post,
    path = "/v1/scripts/{id}/rollback",
    params(("id" = String, Path, description = "Script id")),
    request_body = RollbackBody,
    responses((status = 200, description = "`{script}`", body = Object))
)]
async fn rollback(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RollbackBody>,
) -> Result<impl IntoResponse, ApiError> {
    let script = state.scripts.roll_back(&user.id, &id, body.version).await?;
    Ok(Json(json!({ "script": script })))
}

/// Deletes a script, its versions and triggers; cancels its queued runs.
#[utoipa::path(
    delete,
    path = "/v1/scripts/{id}",
    params(("id" = String, Path, description = "Script id")),
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.scripts.delete(&user.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A script's cron schedules and their policies.
#[utoipa::path(
    get,
    path = "/v1/scripts/{id}/schedules",
    params(("id" = String, Path, description = "Script id")),
    responses((status = 200, description = "`{schedules: [...]}`", body = Object))
)]
async fn schedules(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let schedules = state.scripts.schedules(&user.id, &id).await?;
    Ok(Json(json!({ "schedules": schedules })))
}

/// Pauses or resumes a schedule, or changes its catch-up and overlap policies.
#[utoipa::path(
    patch,
    path = "/v1/scripts/{id}/schedules/{handler}",
    params(
        ("id" = String, Path, description = "Script id"),
        ("handler" = String, Path, description = "The scheduled handler")
    ),
    request_body = crate::store::SchedulePatch,
    responses((status = 200, description = "`{schedule}`", body = Object))
)]
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
