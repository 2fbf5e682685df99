//! The HTTP API: one router per resource, merged here, sharing one state.

mod alerts;
mod audit;
mod body_deadline;
mod cluster;
mod credentials;
mod endpoints;
mod error;
pub(crate) mod events;
mod extract;
mod integrations;
mod json_errors;
mod messages;
mod openapi;
mod pages;
pub(crate) mod paging;
mod payload_limit;
mod replay;
mod run_at;
mod run_stream;
mod runs;
pub(crate) mod scopes;
pub(crate) mod scripts;
mod setup;
mod state;
mod tokens;
pub(crate) mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;
pub(crate) use extract::AuthGrant;
pub(crate) use extract::client_address;
pub(crate) use integrations::listing as integrations_listing;
pub(crate) use pages::escape as escape_html;
pub(crate) use payload_limit::check_payload;
pub(crate) use runs::logs_text;
pub(crate) use runs::manual_run_error;

use crate::credentials::CredentialService;
use crate::deploy::DeployService;
use crate::oauth::OAuth;
use crate::registry::Registry;
use crate::setup_link::SetupLinks;

/// What every handler can reach: the services, behind one pointer, since
/// each extractor of a request takes its own copy of the state.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// The state of a router serving `services`.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services handlers call.
pub struct Services {
    /// Integration registry.
    pub registry: Arc<Registry>,
    /// Credential store.
    pub credentials: CredentialService,
    /// Deploy flow.
    pub deploy: Arc<DeployService>,
    /// OAuth flows and token refresh.
    pub oauth: Arc<OAuth>,
    /// Setup-link signatures.
    pub links: SetupLinks,
    /// Manual runs.
    pub manual: crate::triggers::ManualRuns,
    /// Replays of finished runs.
    pub replays: crate::triggers::Replays,
    /// Runs as their user reads and cancels them.
    pub runs: crate::queue::RunHistory,
    /// A user's scripts.
    pub scripts: crate::scripts::ScriptService,
    /// Who is told that a user's scripts changed (agents' tool lists).
    pub script_changes: crate::scripts::ScriptChanges,
    /// Scripts' state.
    pub state: crate::script_state::StateService,
    /// Users' audit trails.
    pub audit: crate::audit::AuditTrail,
    /// Users' outboxes.
    pub outbox: crate::outbox::Outbox,
    /// The operator's view of the cluster.
    pub cluster: crate::cluster::Cluster,
    /// Where events go (the store, or the cluster's stream).
    pub events: crate::triggers::EventService,
    /// Rate limits and caps.
    pub guards: Arc<crate::abuse::Guards>,
    /// Webhook deliveries from integrations (Slack, Shopify, GitHub…).
    pub webhooks: crate::triggers::Webhooks,
    /// SHA-256 of the operator's token, when one is set.
    pub operator_token_hash: Option<String>,
    /// Every integration's host-side methods.
    pub connectors: Arc<crate::connectors::Connectors>,
    /// Users and their API tokens: whose token a request carries, and
    /// what it may do.
    pub accounts: Arc<crate::accounts::Accounts>,
    /// Alert settings, and the alerts sent.
    pub alerts: crate::alerts::Alerts,
    /// Scripts' HTTP handlers.
    pub http_handlers: crate::triggers::http::HttpHandlers,
    /// The dashboard's sessions and composed reads.
    pub web: crate::web::WebServices,
}

/// `routes`, whose bodies are kept with the runs they start, under the
/// payload limit.
fn payload_routes(routes: OpenApiRouter<AppState>, state: &AppState) -> OpenApiRouter<AppState> {
    routes.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        payload_limit::within,
    ))
}

/// The JSON API, each route registered with its OpenAPI operation.
fn api(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(integrations::router())
        .merge(credentials::router())
        .merge(scripts::router())
        .merge(state::router())
        .merge(payload_routes(runs::router(), state))
        .merge(replay::router())
        .merge(run_stream::router())
        .merge(payload_routes(events::router(), state))
        .merge(payload_routes(webhooks::router(), state))
        .merge(webhooks::listing())
        .merge(messages::router())
        .merge(endpoints::owners_router())
        .merge(cluster::router())
        .merge(audit::router())
        .merge(tokens::router())
        .merge(alerts::router())
        .merge(openapi::router())
}

/// The whole API.
pub fn router(
    state: AppState,
    max_body_bytes: usize,
    body_deadline: std::time::Duration,
) -> Router {
    let (api, doc) = api(&state).split_for_parts();
    let doc = openapi::finish(doc);
    Router::new()
        .merge(openapi::serve(api, &doc))
        .merge(endpoints::router())
        // Not in the OpenAPI document (docs/openapi.md says why): browser
        // pages, and MCP, whose JSON-RPC methods and tools list themselves.
        .merge(setup::router())
        .merge(crate::web::router())
        .merge(crate::mcp::router(&state))
        .fallback(|request: axum::extract::Request| async move {
            // A person who typed a wrong address gets a page; clients, JSON.
            if crate::web::wants_page(&request) {
                crate::web::no_such_page()
            } else {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response()
            }
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            body_deadline::read_within(request, next, body_deadline, max_body_bytes)
        }))
        .layer(axum::middleware::map_response(move |response| {
            json_errors::rewrite(response, max_body_bytes)
        }))
        // Requests are logged by method and path, never their query: a setup
        // link's signature, an OAuth code or state travel there. An HTTP
        // handler's URL token is a secret too: it is left out of the path.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |request: &axum::http::Request<axum::body::Body>| {
                    tracing::debug_span!(
                        "request",
                        method = %request.method(),
                        path = %endpoints::loggable_path(request.uri().path())
                    )
                },
            ),
        )
        .with_state(state)
}
