//! `/v1/integrations`: the registry, as JSON and as markdown docs.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiQuery, AuthUser};
use super::{ApiError, AppState};
use crate::registry::{render_docs, render_index};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/integrations", get(list))
        .route("/v1/integrations/docs", get(docs_for_many))
        .route("/v1/integrations/{id}", get(one))
        .route("/v1/integrations/{id}/docs", get(docs_for_one))
        .route("/v1/integrations/{id}/operations", get(operations))
        .route("/v1/integrations/{id}/setup_link", post(setup_link))
}

/// A signed link that connects the integration for the caller (the OAuth
/// flow or the key form), as a refused deploy gives: for `roost connect`
/// and for connecting before a first deploy.
async fn setup_link(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let definition = known(&state, &id)?;
    Ok(Json(json!({
        "integration": definition.integration_id,
        "setup_url": state.deploy.setup_link(definition, &user.id),
    })))
}

/// The connector contract's view of an integration: its auth and its
/// operations, each with schemas, rate-limit hints and how the host
/// executes it (`mapping`, `code`, or `none`).
async fn operations(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let definition = known(&state, &id)?;
    // The connectors are built from the same registry.
    let operations = state.connectors.operations(&id).unwrap_or_default();
    let credentials: Vec<_> = definition
        .credentials
        .iter()
        .map(|spec| json!({ "key": spec.key, "type": spec.kind, "placement": spec.placement }))
        .collect();
    Ok(Json(json!({
        "integrationId": definition.integration_id,
        "auth": {
            "type": definition.auth_type,
            "scopes": definition.oauth2_config.as_ref().map(|o| &o.scopes),
            "credentials": credentials,
            "credentialDelivery": definition.credential_delivery,
        },
        "operations": operations,
    })))
}

async fn list(State(state): State<AppState>, _user: AuthUser) -> impl IntoResponse {
    Json(listing(&state))
}

/// The registry as `GET /v1/integrations` (and the MCP tool) lists it.
pub(crate) fn listing(state: &AppState) -> serde_json::Value {
    let items: Vec<_> = state
        .registry
        .all()
        .map(|d| {
            json!({
                "integrationId": d.integration_id,
                "name": d.name,
                "description": d.description,
                "version": d.version,
                "authType": d.auth_type,
                "methods": d.methods.iter().map(|m| &m.id).collect::<Vec<_>>(),
                // An OAuth integration without a client on this server
                // cannot be connected until the operator sets one up.
                "configured": state.oauth.missing_client_settings(d).is_none(),
                "operatorSettings": state.oauth.missing_client_settings(d),
            })
        })
        .collect();
    json!({ "integrations": items })
}

async fn one(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let definition = known(&state, &id)?;
    Ok(Json(definition.as_ref().clone()))
}

async fn docs_for_one(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let definition = known(&state, &id)?;
    Ok(markdown(render_docs(definition)))
}

#[derive(Deserialize)]
struct Names {
    names: Option<String>,
}

async fn docs_for_many(
    State(state): State<AppState>,
    _user: AuthUser,
    ApiQuery(query): ApiQuery<Names>,
) -> Result<impl IntoResponse, ApiError> {
    let Some(names) = query.names.filter(|n| !n.trim().is_empty()) else {
        return Ok(markdown(render_index(
            state.registry.all().map(|d| d.as_ref()),
        )));
    };
    let mut out = Vec::new();
    for id in names.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let definition = state.registry.get(id).ok_or_else(|| unknown(&state, id))?;
        out.push(render_docs(definition));
    }
    Ok(markdown(out.join("\n---\n\n")))
}

/// The definition of `id`, or a 404 that lists the known ones.
fn known<'a>(
    state: &'a AppState,
    id: &str,
) -> Result<&'a std::sync::Arc<crate::registry::IntegrationDefinition>, ApiError> {
    state.registry.get(id).ok_or_else(|| unknown(state, id))
}

fn unknown(state: &AppState, id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_integration",
        format!("no integration `{id}`"),
    )
    .with_details(json!({ "known": state.registry.ids() }))
}

fn markdown(text: String) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        text,
    )
}
