//! `GET /v1/messages`: the user's outbox, where scripts using the
//! `messaging` integration leave messages. Newest first, paged by time.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, AuthUser};
use super::{ApiError, AppState};
use crate::api::MessagePage;
use crate::store::MessageFilter;

/// Most messages one page returns.
const MAX_PAGE: i64 = 200;

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource("messages", OpenApiRouter::new().routes(routes!(list)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only this script's messages.
    script_id: Option<String>,
    /// Stored before this time (Unix ms).
    before: Option<i64>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// Messages per page, 1-200 (default 50).
    limit: Option<i64>,
}

/// The user's outbox, newest first.
#[utoipa::path(
    get,
    path = "/v1/messages",
    params(ListQuery),
    responses((status = 200, description = "A page of messages", body = MessagePage))
)]
async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let filter = MessageFilter {
        script_id: query.script_id,
        before: query.before,
        after: super::paging::parse_cursor(query.cursor.as_deref())?,
        limit,
    };
    let messages = state.outbox.list(&user.id, &filter).await?;
    let next_cursor = super::paging::next_cursor(&messages, limit, |x| (x.created_at, &x.id));
    Ok(Json(MessagePage {
        messages,
        next_cursor,
    }))
}
