//! `/v1/scripts/{id}/state[/{key}]`: a script's state, to inspect and
//! reset. Keys may hold `/`: the key is the rest of the path, decoded.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiJson, ApiQuery, AuthUser};
use super::{ApiError, AppState};
use crate::api::{StateEntryView, StatePage};

/// Most entries one page returns.
const MAX_PAGE: i64 = 500;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/scripts/{id}/state", get(list).delete(clear))
        .route(
            "/v1/scripts/{id}/state/{*key}",
            get(one).put(set).delete(remove),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
    cursor: Option<String>,
    limit: Option<i64>,
}

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

async fn one(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path((id, key)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let entry = state.state.get(&user.id, &id, &key).await?;
    Ok(Json(json!({ "entry": StateEntryView::from(entry) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SetBody {
    value: serde_json::Value,
    ttl_seconds: Option<i64>,
}

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

async fn remove(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path((id, key)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    state.state.delete(&user.id, &id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn clear(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let deleted = state.state.clear(&user.id, &id).await?;
    Ok(Json(json!({ "deleted": deleted })))
}
