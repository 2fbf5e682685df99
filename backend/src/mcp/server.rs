//! The MCP server a session talks to: roost's own tools beside the user's
//! script tools, the integration docs as resources, and a notice to the
//! client whenever the user's scripts (and so their tools) change.

use axum::http::request::Parts;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorCode, Implementation, InitializeRequestParams,
    InitializeResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio::sync::broadcast::error::RecvError;

use super::tools::{Owner, Roost, user};
use super::{resources, script_tools};
use crate::store::User;

impl ServerHandler for Roost {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_resources()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("roost", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "roost runs small WebAssembly scripts with integrations. Read the \
                 integration docs (tools, or the roost://integrations resources), deploy and \
                 inspect scripts, connect what they need, run them or send them events, and \
                 read their runs' output. Tools named `<script>__<handler>` are the user's \
                 own scripts' tools: calling one runs the script.",
            )
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        let user = request_user(&context.extensions)?;
        // A second `initialize` on one session keeps its first place.
        if self.owner.get().is_none() {
            let Some(slot) = self.sessions.take(&user.id) else {
                let cap = self.state.guards.limits.max_mcp_sessions_per_user;
                return Err(ErrorData::new(
                    ErrorCode::INVALID_REQUEST,
                    format!(
                        "you have {cap} MCP sessions open at this server, the most it keeps; \
                         close one (DELETE /mcp with its Mcp-Session-Id) or let an idle one \
                         expire ({} min)",
                        super::SESSION_IDLE.as_secs() / 60
                    ),
                    Some(serde_json::json!({ "code": "too_many_sessions" })),
                ));
            };
            if self.owner.set(Owner::new(user.id.clone(), slot)).is_ok() {
                self.watch_scripts(&user, context.peer.clone());
            }
        }
        self.session_user(&context.extensions)?;
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let user = self.session_user(&context.extensions)?;
        let mut tools = self.tool_router.list_all();
        tools.extend(script_tools::list(&self.state, &user).await?);
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let user = self.session_user(&context.extensions)?;
        if self.tool_router.has_route(&request.name) {
            let call = ToolCallContext::new(self, request, context);
            return self.tool_router.call(call).await;
        }
        // Fails closed: a request without its grant runs no script.
        let parts = context
            .extensions
            .get::<Parts>()
            .ok_or_else(|| ErrorData::internal_error("request not authenticated", None))?;
        if let Some(refused) =
            super::tools::refused_scope(parts, crate::store::Scope::Run, &request.name)?
        {
            return Ok(super::tools::tool_error(refused).await?.into());
        }
        match script_tools::call(&self.state, &user, &request.name, request.arguments).await? {
            Some(result) => Ok(result.into()),
            None => Err(ErrorData::invalid_params(
                format!("no tool `{}`", request.name),
                None,
            )),
        }
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        // Script tools are checked by `script_tools::call` against their
        // stored schema; roost's own by the SDK against theirs.
        self.tool_router.get(name).cloned()
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(resources::list(
            &self.state,
        )))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        resources::read(&self.state, &request.uri).map(Into::into)
    }
}

impl Roost {
    /// The request's user, who must be the session's: a session id is no
    /// credential, and one user's session is not another's to use.
    fn session_user(&self, extensions: &rmcp::model::Extensions) -> Result<User, ErrorData> {
        let user = request_user(extensions)?;
        match self.owner.get() {
            Some(owner) if owner.user_id == user.id => Ok(user),
            Some(_) => Err(ErrorData::new(
                ErrorCode::INVALID_REQUEST,
                "this MCP session belongs to another user",
                Some(serde_json::json!({ "code": "not_your_session" })),
            )),
            None => Err(ErrorData::new(
                ErrorCode::INVALID_REQUEST,
                "initialize the session first",
                None,
            )),
        }
    }

    /// Tells the session's client each time `user`'s scripts change, until
    /// the session ends (once per session: started by its `initialize`).
    fn watch_scripts(&self, user: &User, peer: rmcp::Peer<RoleServer>) {
        let user_id = user.id.clone();
        let mut changes = self.state.script_changes.subscribe();
        let mut session = self.session.subscribe();
        let mut closing = self.state.runs.closing();
        tokio::spawn(async move {
            loop {
                let changed = tokio::select! {
                    changed = changes.recv() => changed,
                    // The session's handler is gone: so is the session.
                    _ = session.changed() => return,
                    _ = closing.wait_for(|closing| *closing) => return,
                };
                match changed {
                    Ok(id) if id != user_id => continue,
                    // Its scripts changed, or too much changed to tell.
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        if peer.notify_tool_list_changed().await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
}

/// The user `super::authenticate` put in the request's extensions.
fn request_user(extensions: &rmcp::model::Extensions) -> Result<User, ErrorData> {
    let parts = extensions
        .get::<Parts>()
        .ok_or_else(|| ErrorData::internal_error("request not authenticated", None))?;
    user(parts).cloned()
}
