//! The dashboard's stylesheet and script, compiled into the binary.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::http::AppState;

const CSS: &str = include_str!("assets/roost.css");
const JS: &str = include_str!("assets/roost.js");

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/assets/roost.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/assets/roost.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // A new roost binary may change them: browsers check again.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
