//! The operator's view: `GET /v1/cluster` (nodes, their addresses and
//! heartbeats, the runs they hold, the whole queue) and `GET /metrics`
//! (Prometheus text). Both describe every tenant at once, so both take the
//! operator's token (`ROOST_OPERATOR_TOKEN`), not a user's, and are off
//! without one.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Operator;
use super::{ApiError, AppState};

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource(
        "operator",
        OpenApiRouter::new()
            .routes(routes!(health))
            .routes(routes!(cluster))
            .routes(routes!(metrics)),
    )
}

/// Whether the server is up (for load balancers); anyone may ask.
#[utoipa::path(
    get,
    path = "/health",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain"))
)]
async fn health() -> &'static str {
    "ok"
}

/// The nodes, their heartbeats and the runs they hold, and the queue.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    responses((
        status = 200,
        description = "`{this_node, nodes, queue_depth, event_bus}`",
        body = Object
    ))
)]
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

/// Every tenant's figures, in Prometheus' text format.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((
        status = 200,
        description = "Prometheus text exposition",
        body = String,
        content_type = "text/plain"
    ))
)]
async fn metrics(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<impl IntoResponse, ApiError> {
    let text = state.cluster.metrics().await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text))
}
