//! `GET /v1/audit`: the user's own credential audit trail, newest first.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiQuery, AuthUser};
use super::{ApiError, AppState};
use crate::store::AuditFilter;

/// Most entries one page returns.
const MAX_PAGE: i64 = 500;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/audit", get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    before: Option<i64>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let filter = AuditFilter {
        before: query.before,
        after: super::paging::parse_cursor(query.cursor.as_deref())?,
        limit,
    };
    let entries = state.audit.list(&user.id, &filter).await?;
    let next_cursor = super::paging::next_cursor(&entries, limit, |x| (x.at, &x.id));
    Ok(Json(
        json!({ "entries": entries, "next_cursor": next_cursor }),
    ))
}
