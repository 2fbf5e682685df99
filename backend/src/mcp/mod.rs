//! `/mcp`: the Model Context Protocol over Streamable HTTP (issue #32), so an
//! agent can read the integration docs, deploy and inspect scripts, run
//! them, read runs and connections, and send events. Built on the official
//! SDK (`rmcp`); every tool calls the same services as the REST handlers,
//! under the same bearer token. A user's `#[tool]` handlers are tools too
//! (`script_tools.rs`), and the integration docs are resources.

mod access;
mod resources;
mod script_tools;
mod server;
mod tools;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::http::{AppState, AuthGrant};
use crate::queue::user_slots::UserSlots;

/// How long an MCP session may stay idle before it is closed.
pub(crate) const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

// The longest a tool call waits on its run, with room to answer.
const _: () = assert!(
    tools::MAX_WAIT_SECS + 60 < SESSION_IDLE.as_secs()
        && script_tools::CALL_WAIT.as_secs() + 60 < SESSION_IDLE.as_secs()
);

/// The MCP endpoint, authenticated as the REST API is.
pub fn router(state: &AppState) -> Router<AppState> {
    let services = state.clone();
    // The SDK guards against DNS rebinding by accepting only loopback `Host`s
    // by default; that attack needs ambient credentials (cookies), and every
    // request here carries an explicit bearer token, so any host may serve.
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    // An agent's open streams end when the server stops, as run streams do
    // (`RunHistory::close`), so the graceful stop does not wait on them.
    let cancel = config.cancellation_token.clone();
    let mut closing = state.runs.closing();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            // An error is a dropped sender: the server is gone either way.
            let _ = closing.wait_for(|closing| *closing).await;
            cancel.cancel();
        });
    }
    let sessions = UserSlots::new(state.guards.limits.max_mcp_sessions_per_user);
    // An idle session closes after `SESSION_IDLE`; a call still waiting on
    // a run does not count as activity, so the longest wait is shorter.
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(SESSION_IDLE);
    let service = StreamableHttpService::new(
        move || Ok(tools::Roost::new(services.clone(), sessions.clone())),
        manager.into(),
        config,
    );
    Router::new()
        .nest_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
}

/// Every request, not only `initialize`, must bear a valid token: a session
/// id alone is not a credential. The user rides in the request's extensions,
/// which the SDK hands to the tools.
async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match AuthGrant::from_request_parts(&mut parts, &state).await {
        Ok(AuthGrant(grant)) => {
            parts.extensions.insert(grant.user.clone());
            parts.extensions.insert(grant);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(err) => err.into_response(),
    }
}
