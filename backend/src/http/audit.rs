//! `GET /v1/audit`: the user's own credential audit trail, newest first.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, AuthUser};
use super::{ApiError, AppState};
use crate::store::AuditFilter;

/// Most entries one page returns.
const MAX_PAGE: i64 = 500;

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource("audit", OpenApiRouter::new().routes(routes!(list)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Before this time (Unix ms).
    before: Option<i64>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// Entries per page, 1-500 (default 100).
    limit: Option<i64>,
}

/// The user's credential audit trail, newest first.
#[utoipa::path(
    get,
    path = "/v1/audit",
    params(ListQuery),
    responses((status = 200, description = "`{entries, next_cursor}`", body = Object))
)]
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
