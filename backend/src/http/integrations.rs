//! `/v1/integrations`: the registry, as JSON and as markdown docs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, AuthUser};
use super::{ApiError, AppState};
use crate::registry::{render_docs, render_index};

pub(super) fn router() -> OpenApiRouter<AppState> {
    super::openapi::resource(
        "integrations",
        OpenApiRouter::new()
            .routes(routes!(list))
            .routes(routes!(docs_for_many))
            .routes(routes!(one))
            .routes(routes!(docs_for_one))
            .routes(routes!(operations))
            .routes(routes!(setup_link)),
    )
}

/// A signed link that connects the integration for the caller (the OAuth
/// flow or the key form), as a refused deploy gives: for `roost connect`
/// and for connecting before a first deploy.
#[utoipa::path(
    post,
    path = "/v1/integrations/{id}/setup_link",
    params(("id" = String, Path, description = "Integration id")),
    responses((status = 200, description = "`{integration, setup_url}`", body = Object))
)]
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
#[utoipa::path(
    get,
    path = "/v1/integrations/{id}/operations",
    params(("id" = String, Path, description = "Integration id")),
    responses((status = 200, description = "`{integrationId, auth, operations}`", body = Object))
)]
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

/// The integrations this server knows, and whether each can be connected.
#[utoipa::path(
    get,
    path = "/v1/integrations",
    responses((status = 200, description = "`{integrations: [...]}`", body = Object))
)]
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

/// An integration's definition.
#[utoipa::path(
    get,
    path = "/v1/integrations/{id}",
    params(("id" = String, Path, description = "Integration id")),
    responses((status = 200, description = "The definition", body = Object))
)]
async fn one(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let definition = known(&state, &id)?;
    Ok(Json(definition.as_ref().clone()))
}

/// An integration's docs, as markdown.
#[utoipa::path(
    get,
    path = "/v1/integrations/{id}/docs",
    params(("id" = String, Path, description = "Integration id")),
    responses((status = 200, description = "Markdown", body = String, content_type = "text/markdown"))
)]
async fn docs_for_one(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let definition = known(&state, &id)?;
    Ok(markdown(render_docs(definition)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Names {
    /// Comma-separated integration ids; none: the index of all.
    names: Option<String>,
}

/// Several integrations' docs, or the index of all, as markdown.
#[utoipa::path(
    get,
    path = "/v1/integrations/docs",
    params(Names),
    responses((status = 200, description = "Markdown", body = String, content_type = "text/markdown"))
)]
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
