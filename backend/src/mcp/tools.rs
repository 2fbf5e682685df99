//! The MCP tools: thin wrappers over the services the REST handlers call,
//! answering with the same JSON and, on failure, the REST API's error body.

use std::time::Duration;

use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{ApiError, AppState, manual_run_error};
use crate::registry::{render_docs, render_index};
use crate::store::{RunFilter, RunStatus, User};
use crate::triggers::ManualRequest;

/// Most runs `list_runs` returns, as one REST page.
const MAX_RUNS: i64 = 200;

/// Longest `run_script` wait, as `?wait=true&timeout=` allows.
const MAX_WAIT_SECS: u64 = 600;

/// One MCP session's server: the shared services and the tool table.
#[derive(Clone)]
pub(super) struct Roost {
    state: AppState,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DocsArgs {
    /// Integration ids (for example `["gmail"]` or `["gmail", "slack"]`):
    /// their full docs, as one markdown document. Empty or absent: the index
    /// of every integration, one line each.
    #[serde(default)]
    ids: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListRunsArgs {
    /// Only this script's runs.
    #[serde(default)]
    script_id: Option<String>,
    /// Only runs in this status.
    #[serde(default)]
    #[schemars(schema_with = "status_schema")]
    status: Option<String>,
    /// Most runs to return, newest first (default 50).
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    limit: Option<i64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RunIdArgs {
    /// The run's id (from `list_runs` or `run_script`).
    run_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RunScriptArgs {
    /// The script's id (from `list_scripts`).
    script_id: String,
    /// The handler to run; may be left out when the script has only one.
    #[serde(default)]
    handler: Option<String>,
    /// The run's payload: any JSON value (default null).
    #[serde(default)]
    payload: Value,
    /// Longest wait for the run's end, in seconds (default 60). A run still
    /// going then is returned with its current status.
    #[serde(default)]
    #[schemars(range(min = 1, max = 600))]
    timeout_secs: Option<u64>,
}

/// `status` as the enum of the run statuses the REST filter takes.
fn status_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // Null included: the field is optional and its default is null.
    let mut statuses: Vec<Value> = RunStatus::ALL
        .iter()
        .map(|s| json!(s.to_string()))
        .collect();
    statuses.push(Value::Null);
    schemars::json_schema!({ "type": ["string", "null"], "enum": statuses })
}

#[tool_router]
impl Roost {
    pub(super) fn new(state: AppState) -> Self {
        Self {
            state,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "List the integrations scripts can use, with their methods, auth type and \
                       whether this server can connect them."
    )]
    async fn list_integrations(&self) -> Result<CallToolResult, ErrorData> {
        let state = &self.state;
        // The same fields as GET /v1/integrations.
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
                    "configured": state.oauth.missing_client_settings(d).is_none(),
                    "operatorSettings": state.oauth.missing_client_settings(d),
                })
            })
            .collect();
        Ok(CallToolResult::structured(json!({ "integrations": items })))
    }

    #[tool(
        description = "Read integration docs as markdown, written for writing a script that \
                       uses them: one integration's, several at once, or (no ids) the index."
    )]
    async fn get_integration_docs(
        &self,
        Parameters(args): Parameters<DocsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let registry = &self.state.registry;
        let ids: Vec<&str> = args
            .ids
            .iter()
            .map(|id| id.trim())
            .filter(|id| !id.is_empty())
            .collect();
        if ids.is_empty() {
            let index = render_index(registry.all().map(|d| d.as_ref()));
            return Ok(CallToolResult::success(vec![ContentBlock::text(index)]));
        }
        let mut docs = Vec::new();
        for id in ids {
            let Some(definition) = registry.get(id) else {
                // As /v1/integrations/docs?names= answers an unknown one.
                let error = ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_integration",
                    format!("no integration `{id}`"),
                )
                .with_details(json!({ "known": registry.ids() }));
                return tool_error(error).await;
            };
            docs.push(render_docs(definition));
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(
            docs.join("\n---\n\n"),
        )]))
    }

    #[tool(description = "List your deployed scripts.")]
    async fn list_scripts(
        &self,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let user = user(&parts)?;
        match self.state.scripts.list(&user.id).await {
            Ok(scripts) => Ok(CallToolResult::structured(json!({ "scripts": scripts }))),
            Err(err) => tool_error(err.into()).await,
        }
    }

    #[tool(description = "List your scripts' runs, newest first.")]
    async fn list_runs(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<ListRunsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let user = user(&parts)?;
        let status = match args.status.as_deref().map(str::parse::<RunStatus>) {
            None => None,
            Some(Ok(status)) => Some(status),
            Some(Err(_)) => {
                let error = ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_status",
                    format!("unknown status `{}`", args.status.unwrap_or_default()),
                )
                .with_details(json!({ "statuses": RunStatus::ALL }));
                return tool_error(error).await;
            }
        };
        let filter = RunFilter {
            script_id: args.script_id,
            status,
            before: None,
            since: None,
            after: None,
            limit: args.limit.unwrap_or(50).clamp(1, MAX_RUNS),
        };
        match self.state.runs.list(&user.id, &filter).await {
            Ok(runs) => Ok(CallToolResult::structured(json!({ "runs": runs }))),
            Err(err) => tool_error(err.into()).await,
        }
    }

    #[tool(description = "Read a run's output: its stdout and stderr, as text.")]
    async fn get_run_logs(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<RunIdArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let user = user(&parts)?;
        let (run, logs) = match self.state.runs.logs(&user.id, &args.run_id).await {
            Ok(Some(found)) => found,
            Ok(None) => return tool_error(ApiError::not_found("run")).await,
            Err(err) => return tool_error(err.into()).await,
        };
        // The same text as GET /v1/runs/{id}/logs.
        let mut text = String::new();
        for (name, bytes, truncated) in [
            ("stdout", &logs.stdout, run.stdout_truncated),
            ("stderr", &logs.stderr, run.stderr_truncated),
        ] {
            text.push_str(&format!(
                "--- {name} ---\n{}",
                String::from_utf8_lossy(bytes)
            ));
            if !text.ends_with('\n') {
                text.push('\n');
            }
            if truncated {
                text.push_str(&format!(
                    "[roost: output truncated at {} bytes]\n",
                    run.output_cap.unwrap_or_default()
                ));
            }
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }

    #[tool(
        description = "Run one of your scripts now and wait for its end (up to timeout_secs): \
                       returns the run's id, status, stdout and stderr."
    )]
    async fn run_script(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<RunScriptArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let user = user(&parts)?;
        let wait = args.timeout_secs.unwrap_or(60).clamp(1, MAX_WAIT_SECS);
        // As POST /v1/scripts/{id}/run?wait=true.
        let request = ManualRequest {
            handler: args.handler,
            payload: args.payload,
            idempotency_key: None,
            wait: Some(Duration::from_secs(wait)),
        };
        let started = match self
            .state
            .manual
            .start(&user.id, &args.script_id, request)
            .await
        {
            Ok(started) => started,
            Err(err) => return tool_error(manual_run_error(err)).await,
        };
        let run = started.run;
        let (stdout, stderr) = started
            .waited
            .map(|output| {
                (
                    String::from_utf8_lossy(&output.logs.stdout).into_owned(),
                    String::from_utf8_lossy(&output.logs.stderr).into_owned(),
                )
            })
            .unwrap_or_default();
        Ok(CallToolResult::structured(json!({
            "run_id": run.id,
            "status": run.status,
            "finished": run.status.is_terminal(),
            "run": run,
            "stdout": stdout,
            "stderr": stderr,
        })))
    }
}

// The table built once per session, not per call (the macro's default).
#[tool_handler(router = self.tool_router)]
impl ServerHandler for Roost {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("roost", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "roost runs small WebAssembly scripts with integrations. Read the \
                 integration docs, list your scripts and runs, run a script and read its output.",
            )
    }
}

/// The authenticated user, put there by `super::authenticate`.
fn user(parts: &Parts) -> Result<&User, ErrorData> {
    parts
        .extensions
        .get::<User>()
        .ok_or_else(|| ErrorData::internal_error("request not authenticated", None))
}

/// A failed tool call, as MCP reports one to the model (`isError`), with the
/// REST API's error body (`{"error": {"code", "message", "details"}}`) both
/// as structured content and as text.
async fn tool_error(error: ApiError) -> Result<CallToolResult, ErrorData> {
    let response = error.into_response();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .map_err(|err| ErrorData::internal_error(err.to_string(), None))?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|err| ErrorData::internal_error(err.to_string(), None))?;
    Ok(CallToolResult::structured_error(body))
}
