//! The operator's view: `GET /v1/cluster` (nodes, their addresses and
//! heartbeats, the runs they hold, the whole queue) and `GET /metrics`
//! (Prometheus text). Both describe every tenant at once, so both take the
//! operator's token (`ROOST_OPERATOR_TOKEN`), not a user's, and are off
//! without one.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::extract::Operator;
use super::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/cluster", get(cluster))
        .route("/metrics", get(metrics))
}

async fn cluster(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<impl IntoResponse, ApiError> {
    let view = state.cluster.view().await?;
    Ok(Json(serde_json::json!({
        "this_node": state.cluster.node_id(),
        "nodes": view.nodes,
        "queue_depth": view.queue_depth,
        "event_bus": state.events.bus().map(|bus| serde_json::json!({
            "stream": bus.config().stream,
            "subjects": format!("{}.events.>", bus.config().subject_prefix),
        })),
    })))
}

async fn metrics(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<impl IntoResponse, ApiError> {
    let text = state.cluster.metrics().await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text))
}
