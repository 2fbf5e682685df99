//! `GET /v1/audit`: the user's own credential audit trail, newest first.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiQuery, AuthUser};
use super::{ApiError, AppState};

/// Most entries one page returns.
const MAX_PAGE: i64 = 500;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/audit", get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let entries = state
        .store
        .list_audit(&user.id, query.before, limit)
        .await?;
    let next_before = super::next_before(&entries, limit, |x| x.at);
    Ok(Json(
        json!({ "entries": entries, "next_before": next_before }),
    ))
}
