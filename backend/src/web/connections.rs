//! `/connections`: every integration the user's scripts declare, how it
//! stands, and the links and forms to connect, reconnect or disconnect.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::error::WebError;
use super::extract::{CsrfForm, Viewer};
use super::{Nav, render, see_other};
use crate::dashboard::Standing;
use crate::http::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/connections", get(list))
        .route("/connections/{integration}/disconnect", post(disconnect))
}

struct ConnectionLine {
    integration: String,
    name: String,
    standing: &'static str,
    standing_text: &'static str,
    used_by: Vec<String>,
    setup_url: String,
}

#[derive(Template)]
#[template(path = "connections.html")]
struct ConnectionsPage {
    nav: Nav,
    connections: Vec<ConnectionLine>,
}

fn standing_text(standing: Standing) -> &'static str {
    match standing {
        Standing::Connected => "connected",
        Standing::ReconnectNeeded => "reconnect needed",
        Standing::Rejected => "rejected by the provider",
        Standing::Missing => "not connected",
    }
}

async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, WebError> {
    let connections = state
        .web
        .dashboard
        .connections(&viewer.user.id)
        .await?
        .into_iter()
        .map(|c| ConnectionLine {
            standing: c.standing.as_str(),
            standing_text: standing_text(c.standing),
            integration: c.integration,
            name: c.name,
            used_by: c.used_by,
            setup_url: c.setup_url,
        })
        .collect();
    Ok(render::ok(&ConnectionsPage {
        nav: Nav::new(&viewer, "connections"),
        connections,
    }))
}

#[derive(Deserialize)]
struct Nothing {}

async fn disconnect(
    State(state): State<AppState>,
    Path(integration): Path<String>,
    CsrfForm {
        viewer,
        form: Nothing {},
    }: CsrfForm<Nothing>,
) -> Result<Response, WebError> {
    let deleted = state
        .credentials
        .delete(&viewer.user.id, &integration)
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    if !deleted {
        return Err(WebError::NotFound(format!("connection to `{integration}`")));
    }
    Ok(see_other("/connections"))
}
