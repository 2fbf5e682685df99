//! `roost mcp`: the MCP server over stdio, for agent clients that start
//! their servers as local processes. It is a proxy: it connects to a roost
//! server's `/mcp` (Streamable HTTP, with the API token) as an MCP client,
//! and answers the local client on stdin/stdout with what that server says
//! — its instructions and capabilities, its tools and resources, its results
//! and errors unchanged — and passes on its list-changed notifications.
//!
//! stdout carries MCP JSON-RPC only; logs go to stderr. A server that cannot
//! be reached, or that refuses the token, ends the command with one line on
//! stderr and a non-zero exit.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ServerConfig, ServerPeerInfo,
};
use rmcp::service::{
    ClientInitializeError, NotificationContext, Peer, RequestContext, RoleClient, RoleServer,
    ServiceError, ServiceExt,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    HttpStatusError, StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::{ClientHandler, ErrorData, ServerHandler};

use super::client::ServerArgs;

/// Longest wait for the server to answer `initialize` at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// `roost mcp --help`.
pub(super) const LONG_ABOUT: &str = "Serve roost's MCP tools over stdio, for an agent client that starts \
its MCP servers as local processes.\n\n\
`roost mcp` connects to the roost server at ROOST_SERVER (its /mcp endpoint) with \
the API token in ROOST_TOKEN, and forwards the client's requests on stdin to it and \
the answers to stdout. stdout carries MCP messages only; logs go to stderr \
(ROOST_LOG sets the filter). A server that cannot be reached or refuses the token \
ends it with one line on stderr and exit status 1.\n\n\
In a client's configuration: {\"command\": \"roost\", \"args\": [\"mcp\"], \
\"env\": {\"ROOST_SERVER\": \"http://127.0.0.1:8080\", \"ROOST_TOKEN\": \"roost_…\"}}";

#[derive(Debug, clap::Args)]
pub(super) struct McpArgs {
    #[command(flatten)]
    server: ServerArgs,
}

pub(super) fn execute(args: McpArgs) -> anyhow::Result<ExitCode> {
    // https goes through rustls with ring, as NATS connections do.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = super::client::runtime()?;
    let code = runtime.block_on(serve(args.server));
    // A read of stdin in progress cannot be interrupted: do not wait on it.
    runtime.shutdown_background();
    Ok(code)
}

async fn serve(server: ServerArgs) -> ExitCode {
    let base = server.server.trim_end_matches('/').to_string();
    let local: Arc<OnceLock<Peer<RoleServer>>> = Arc::default();
    let remote = match connect(&base, &server.token, Relay(local.clone())).await {
        Ok(remote) => remote,
        Err(line) => {
            eprintln!("roost mcp: {line}");
            return ExitCode::FAILURE;
        }
    };
    let Some(info) = remote.peer_info() else {
        eprintln!("roost mcp: the server at {base} did not say what it serves");
        return ExitCode::FAILURE;
    };
    tracing::info!(server = %base, protocol = %info.protocol_version, "connected");
    let proxy = Proxy {
        remote: remote.peer().clone(),
        info: local_info(&info),
        base: base.clone(),
    };
    let service = match proxy.serve(rmcp::transport::stdio()).await {
        Ok(service) => service,
        Err(err) => {
            // Most often stdin closed before `initialize`: nothing to serve.
            tracing::debug!("the local client did not initialize: {err}");
            let _ = remote.cancel().await;
            return ExitCode::SUCCESS;
        }
    };
    let _ = local.set(service.peer().clone());
    let remote_gone = remote.cancellation_token();
    tokio::select! {
        // stdin closed (or the client went away): the normal end.
        _ = service.waiting() => {
            remote_gone.cancel();
            ExitCode::SUCCESS
        }
        _ = remote.waiting() => {
            eprintln!("roost mcp: lost the connection to the server at {base}");
            ExitCode::FAILURE
        }
    }
}

/// Connects to `{base}/mcp` as an MCP client; or the one line that says why not.
async fn connect(
    base: &str,
    token: &str,
    relay: Relay,
) -> Result<rmcp::service::RunningService<RoleClient, Relay>, String> {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"))
        .auth_header(token)
        // A restarted server forgets the session: start a new one.
        .reinit_on_expired_session(true);
    let transport = StreamableHttpClientTransport::from_config(config);
    let client = http_client_of(&transport);
    match tokio::time::timeout(CONNECT_TIMEOUT, relay.serve(transport)).await {
        Ok(Ok(running)) => Ok(running),
        Ok(Err(err)) => Err(startup_error(client, base, &err)),
        Err(_) => Err(format!(
            "the server at {base} did not answer in {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// The HTTP client type under the SDK's transport (reqwest 0.13, which roost
/// does not name), to find its errors among the SDK's.
fn http_client_of<C: StreamableHttpClient>(_: &StreamableHttpClientTransport<C>) -> PhantomData<C> {
    PhantomData
}

/// One line for a failed start: the HTTP status the server answered, or why
/// it could not be reached. Neither the token nor a response body.
fn startup_error<C: StreamableHttpClient>(
    _: PhantomData<C>,
    base: &str,
    err: &ClientInitializeError,
) -> String {
    let mut status = None;
    let mut innermost = err.to_string();
    // The transport's error is not the `source` of the SDK's.
    let mut source: Option<&(dyn std::error::Error + 'static)> = match err {
        ClientInitializeError::TransportError { error, .. } => Some(error.error.as_ref()),
        other => Some(other),
    };
    while let Some(current) = source {
        if let Some(http) = current.downcast_ref::<HttpStatusError>() {
            status = status.or(Some(http.status));
        }
        // The SDK reports other statuses in words: "HTTP 401 Unauthorized: …".
        status = status.or_else(|| http_status_in(&current.to_string()));
        innermost = current.to_string();
        // The HTTP client's own error is not its wrapper's `source` either.
        source = match current.downcast_ref::<StreamableHttpError<C::Error>>() {
            Some(StreamableHttpError::Client(inner)) => Some(inner),
            _ => current.source(),
        };
    }
    let Some(code) = status else {
        return match err {
            ClientInitializeError::JsonRpcError(error) => {
                format!(
                    "the server at {base} refused to start a session: {}",
                    error.message
                )
            }
            _ => format!("cannot reach the server at {base}: {innermost}"),
        };
    };
    let words = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("")
        .to_lowercase();
    let status = format!("{code} {words}").trim_end().to_string();
    match code {
        401 | 403 => format!("the server at {base} refused the token ({status})"),
        404 => format!("the server at {base} has no MCP endpoint at /mcp ({status})"),
        _ => format!("the server at {base} answered {status}"),
    }
}

/// The status in an SDK message of the form `HTTP 401 Unauthorized: …`.
fn http_status_in(message: &str) -> Option<u16> {
    let rest = &message[message.find("HTTP ")? + 5..];
    let digits = rest.get(..3)?;
    let code: u16 = digits.parse().ok()?;
    let ends = rest[3..].chars().next().is_none_or(|c| !c.is_ascii_digit());
    ((100..600).contains(&code) && ends).then_some(code)
}

/// What the local client is told at `initialize`: the server's own answer.
fn local_info(remote: &ServerPeerInfo) -> ServerConfig {
    let implementation = remote
        .server_info
        .clone()
        .unwrap_or_else(|| Implementation::new("roost", env!("CARGO_PKG_VERSION")));
    let mut info = ServerConfig::new(remote.capabilities.clone())
        .with_server_info(implementation)
        .with_protocol_version(remote.protocol_version.clone());
    info.instructions = remote.instructions.clone();
    info.meta = remote.meta.clone();
    info
}

/// The remote's error as it sent it; a failure of the connection as an
/// internal error that names the server.
fn remote_error(base: &str, err: ServiceError) -> ErrorData {
    match err {
        ServiceError::McpError(error) => error,
        other => ErrorData::internal_error(
            format!("roost mcp: the server at {base} did not answer: {other}"),
            None,
        ),
    }
}

/// The local server: every request is the remote's.
#[derive(Clone)]
struct Proxy {
    remote: Peer<RoleClient>,
    info: ServerConfig,
    base: String,
}

impl Proxy {
    /// `call` to the remote, abandoned (and cancelled there) when the local
    /// client cancels the request.
    async fn forward<T>(
        &self,
        context: &RequestContext<RoleServer>,
        call: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ErrorData> {
        tokio::select! {
            result = call => result.map_err(|err| remote_error(&self.base, err)),
            _ = context.ct.cancelled() => {
                Err(ErrorData::internal_error("the request was cancelled", None))
            }
        }
    }
}

impl ServerHandler for Proxy {
    fn get_info(&self) -> ServerConfig {
        self.info.clone()
    }

    /// Only versions up to the one the remote speaks with us, so the local
    /// session never asks for more than the remote session gives.
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&self.info.protocol_version))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.forward(&context, self.remote.list_tools(request))
            .await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.forward(&context, self.remote.call_tool_once(request))
            .await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.forward(&context, self.remote.list_resources(request))
            .await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        self.forward(&context, self.remote.list_resource_templates(request))
            .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.forward(&context, self.remote.read_resource_once(request))
            .await
    }
}

/// The client side: passes the remote's notifications on to the local
/// client, once it is there.
#[derive(Clone)]
struct Relay(Arc<OnceLock<Peer<RoleServer>>>);

impl ClientHandler for Relay {
    fn get_info(&self) -> ClientConfig {
        // A session, with `initialize`: notifications arrive on its stream.
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("roost-mcp", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(local) = self.0.get()
            && let Err(err) = local.notify_tool_list_changed().await
        {
            tracing::debug!("passing on tools/list_changed: {err}");
        }
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(local) = self.0.get()
            && let Err(err) = local.notify_resource_list_changed().await
        {
            tracing::debug!("passing on resources/list_changed: {err}");
        }
    }

    /// Progress of a request the local client asked progress of: its token
    /// went to the remote unchanged, so it comes back unchanged.
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(local) = self.0.get()
            && let Err(err) = local.notify_progress(params).await
        {
            tracing::debug!("passing on progress: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::http_status_in;

    #[test]
    fn the_status_in_the_sdks_words() {
        assert_eq!(
            http_status_in("Transport [x] error: HTTP 401 Unauthorized: {}"),
            Some(401)
        );
        assert_eq!(http_status_in("HTTP 404"), Some(404));
        assert_eq!(http_status_in("HTTP 4011"), None);
        assert_eq!(http_status_in("connection refused"), None);
    }
}
