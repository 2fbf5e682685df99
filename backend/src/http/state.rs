//! `/v1/scripts/{id}/state[/{key}]`: a script's state, to inspect, restore
//! and reset. Keys may hold `/`: the key is the rest of the path, decoded.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiQuery, AuthUser};
use super::{ApiError, AppState};
use crate::api::{StateEntryView, StatePage};

/// Most entries one page returns.
const MAX_PAGE: i64 = 500;

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource(
        "state",
        OpenApiRouter::new()
            .routes(routes!(list, replace, clear))
            .routes(routes!(one, set, remove)),
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only keys starting with this.
    #[serde(default)]
    prefix: String,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// Entries per page, 1-500 (default 100).
    limit: Option<i64>,
}

/// A script's state entries in key order, with its usage and quota.
#[utoipa::path(
    get,
    path = "/v1/scripts/{id}/state",
    params(("id" = String, Path, description = "Script id"), ListQuery),
    responses((status = 200, description = "A page of entries", body = StatePage))
)]
async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let page = state
        .state
        .list(&user.id, &id, &query.prefix, query.cursor.as_deref(), limit)
        .await?;
    Ok(Json(StatePage {
        entries: page.entries.into_iter().map(Into::into).collect(),
        next_cursor: page.next,
        usage: page.usage,
        quota: state.state.quota(),
    }))
}

/// One entry.
#[utoipa::path(
    get,
    path = "/v1/scripts/{id}/state/{*key}",
    params(("id" = String, Path, description = "Script id"), ("key" = String, Path, description = "The key; may hold `/`")),
    responses((status = 200, description = "`{entry}`", body = Object))
)]
async fn one(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path((id, key)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let entry = state.state.get(&user.id, &id, &key).await?;
    Ok(Json(json!({ "entry": StateEntryView::from(entry) })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SetBody {
    value: serde_json::Value,
    ttl_seconds: Option<i64>,
}

/// Writes one entry.
#[utoipa::path(
    put,
    path = "/v1/scripts/{id}/state/{*key}",
    params(("id" = String, Path, description = "Script id"), ("key" = String, Path, description = "The key; may hold `/`")),
    request_body = SetBody,
    responses((status = 200, description = "`{entry}`", body = Object))
)]
async fn set(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path((id, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetBody>,
) -> Result<impl IntoResponse, ApiError> {
    let entry = state
        .state
        .set(&user.id, &id, &key, &body.value, body.ttl_seconds)
        .await?;
    Ok(Json(json!({ "entry": StateEntryView::from(entry) })))
}

/// Deletes one entry.
#[utoipa::path(
    delete,
    path = "/v1/scripts/{id}/state/{*key}",
    params(("id" = String, Path, description = "Script id"), ("key" = String, Path, description = "The key; may hold `/`")),
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path((id, key)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    state.state.delete(&user.id, &id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplaceBody {
    entries: Vec<ReplaceEntry>,
}

/// An entry as the list shows it (its `updatedAt` and `runId` are not
/// kept), or with `ttlSeconds` instead of `expiresAt`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReplaceEntry {
    key: String,
    value: serde_json::Value,
    expires_at: Option<i64>,
    ttl_seconds: Option<i64>,
    #[serde(rename = "updatedAt")]
    _updated_at: Option<i64>,
    #[serde(rename = "runId")]
    _run_id: Option<String>,
}

/// Replaces a script's whole state (a restore).
#[utoipa::path(
    put,
    path = "/v1/scripts/{id}/state",
    params(("id" = String, Path, description = "Script id")),
    request_body = ReplaceBody,
    responses((status = 200, description = "`{usage}`", body = Object))
)]
async fn replace(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReplaceBody>,
) -> Result<impl IntoResponse, ApiError> {
    let mut entries = Vec::with_capacity(body.entries.len());
    for entry in body.entries {
        let expires_at = match (entry.expires_at, entry.ttl_seconds) {
            (Some(_), Some(_)) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_input",
                    format!("`{}` has both `expiresAt` and `ttlSeconds`", entry.key),
                ));
            }
            (Some(at), None) => Some(at),
            (None, ttl) => {
                crate::store::state_expiry(ttl, crate::store::now_millis()).map_err(|problem| {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", problem)
                })?
            }
        };
        entries.push((entry.key, entry.value, expires_at));
    }
    let usage = state.state.replace(&user.id, &id, entries).await?;
    Ok(Json(json!({ "usage": usage })))
}

/// Deletes every entry of a script's state.
#[utoipa::path(
    delete,
    path = "/v1/scripts/{id}/state",
    params(("id" = String, Path, description = "Script id")),
    responses((status = 200, description = "`{deleted}`: how many", body = Object))
)]
async fn clear(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let deleted = state.state.clear(&user.id, &id).await?;
    Ok(Json(json!({ "deleted": deleted })))
}
