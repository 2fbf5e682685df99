//! `GET /v1/messages`: the user's outbox, where scripts using the
//! `messaging` integration leave messages. Newest first, paged by time.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::extract::{ApiQuery, AuthUser};
use super::{ApiError, AppState};
use crate::api::MessagePage;
use crate::store::MessageFilter;

/// Most messages one page returns.
const MAX_PAGE: i64 = 200;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/messages", get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    script_id: Option<String>,
    before: Option<i64>,
    cursor: Option<String>,
    limit: Option<i64>,
}

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
