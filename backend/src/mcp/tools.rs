//! The MCP tools: thin wrappers over the services the REST handlers call,
//! answering with the same JSON and, on failure, the REST API's error body.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::http::request::Parts;
use base64::Engine as _;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ErrorData, schemars, tool, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) use super::access::{refused_scope, tool_error, user};
use crate::deploy::{DeclaredMetadata, DeployError, DeployRequest};
use crate::http::events::{Envelope, event_from};
use crate::http::scripts::deployed;
use crate::http::{
    ApiError, AppState, check_payload, integrations_listing as listing, logs_text, manual_run_error,
};
use crate::queue::user_slots::{Slot, UserSlots};
use crate::registry::{render_docs, render_index};
use crate::store::{RunFilter, RunStatus};
use crate::triggers::{ManualRequest, Submitted};

/// Most runs `list_runs` returns, as one REST page.
const MAX_RUNS: i64 = 200;

/// Longest `run_script` wait, as `?wait=true&timeout=` allows.
pub(super) const MAX_WAIT_SECS: u64 = 600;

/// One MCP session's server: the shared services and the tool table.
#[derive(Clone)]
pub(super) struct Roost {
    pub(super) state: AppState,
    pub(super) tool_router: ToolRouter<Self>,
    /// Dropped with the session's last handle: ends its watch on the
    /// user's scripts (see `server.rs`).
    pub(super) session: Arc<tokio::sync::watch::Sender<()>>,
    /// Open sessions by user, at this node.
    pub(super) sessions: Arc<UserSlots>,
    /// Who opened the session, with their place among their sessions:
    /// set at `initialize`, given back when the session ends.
    pub(super) owner: Arc<std::sync::OnceLock<Owner>>,
}

/// The user a session belongs to.
pub(super) struct Owner {
    pub(super) user_id: String,
    _slot: Slot,
}

impl Owner {
    pub(super) fn new(user_id: String, slot: Slot) -> Self {
        Self {
            user_id,
            _slot: slot,
        }
    }
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
    /// The next page: a previous answer's `next_cursor`, unchanged.
    #[serde(default)]
    cursor: Option<String>,
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

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ScriptIdArgs {
    /// The script's id (from `list_scripts` or `deploy_script`).
    script_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeployArgs {
    /// The script's name: a new script, or a new version of yours so named.
    name: String,
    /// The compiled component (`.wasm`), standard base64.
    component_base64: String,
    /// What the script declares, when the component does not embed it:
    /// `{"integrations": [...], "triggers": [...]}`, as the REST deploy body.
    #[serde(default)]
    metadata: Option<Value>,
    /// Retry policy: `{"max": 0..=10, "on_limits": bool}`.
    #[serde(default)]
    retries: Option<Value>,
    /// Run limits within the server's maxima:
    /// `{"timeout_ms", "memory_bytes", "output_bytes"}`.
    #[serde(default)]
    limits: Option<Value>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SendEventArgs {
    /// The event's type (for example `order.created`): every one of your
    /// scripts with an `on_event` handler for it runs.
    #[serde(rename = "type")]
    event_type: String,
    /// What the handlers receive: any JSON value (default null).
    #[serde(default)]
    payload: Value,
    /// Idempotency key: an id seen before starts nothing again. Generated
    /// when absent.
    #[serde(default)]
    id: Option<String>,
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
    pub(super) fn new(state: AppState, sessions: Arc<UserSlots>) -> Self {
        Self {
            state,
            tool_router: Self::tool_router(),
            session: Arc::new(tokio::sync::watch::channel(()).0),
            sessions,
            owner: Arc::default(),
        }
    }

    #[tool(
        description = "List the integrations scripts can use, with their methods, auth type and \
                       whether this server can connect them."
    )]
    async fn list_integrations(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::structured(listing(&self.state)))
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

    #[tool(
        description = "List your scripts' runs, newest first, a page at a time: pass \
                       `next_cursor` back as `cursor` for the next page (none: the last page)."
    )]
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
        let after = match crate::http::paging::parse_cursor(args.cursor.as_deref()) {
            Ok(after) => after,
            Err(error) => return tool_error(error).await,
        };
        let limit = args.limit.unwrap_or(50).clamp(1, MAX_RUNS);
        let filter = RunFilter {
            script_id: args.script_id,
            status,
            before: None,
            since: None,
            after,
            limit,
        };
        match self.state.runs.list(&user.id, &filter).await {
            Ok(runs) => {
                // As GET /v1/runs pages.
                let next_cursor =
                    crate::http::paging::next_cursor(&runs, limit, |x| (x.queued_at, &x.id));
                Ok(CallToolResult::structured(
                    json!({ "runs": runs, "next_cursor": next_cursor }),
                ))
            }
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
        let text = logs_text(&run, &logs);
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }

    #[tool(
        description = "Run one of your scripts now and wait for its end (up to timeout_secs): \
                       returns the run's id, status, stdout, stderr and integration calls."
    )]
    async fn run_script(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<RunScriptArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refused) = refused_scope(&parts, crate::store::Scope::Run, "run_script")? {
            return tool_error(refused).await;
        }
        let user = user(&parts)?;
        if let Err(error) = check_payload(&self.state, &args.payload) {
            return tool_error(error).await;
        }
        let wait = args.timeout_secs.unwrap_or(60).clamp(1, MAX_WAIT_SECS);
        // As POST /v1/scripts/{id}/run?wait=true.
        let request = ManualRequest {
            handler: args.handler,
            payload: args.payload,
            idempotency_key: None,
            wait: Some(Duration::from_secs(wait)),
            trigger: Default::default(),
            not_before: None,
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
        let (stdout, stderr, method_calls) = started
            .waited
            .map(|output| {
                (
                    String::from_utf8_lossy(&output.logs.stdout).into_owned(),
                    String::from_utf8_lossy(&output.logs.stderr).into_owned(),
                    output.method_calls,
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
            "method_calls": method_calls,
        })))
    }

    #[tool(
        description = "Inspect one of your scripts: the script, its current version's \
                       triggers, its versions and its schedules."
    )]
    async fn inspect_script(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<ScriptIdArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let user = user(&parts)?;
        let scripts = &self.state.scripts;
        // As GET /v1/scripts/{id}, /versions and /schedules.
        let (script, triggers) = match scripts.get(&user.id, &args.script_id).await {
            Ok(found) => found,
            Err(err) => return tool_error(err.into()).await,
        };
        let versions = match scripts.versions(&user.id, &args.script_id).await {
            Ok(versions) => versions,
            Err(err) => return tool_error(err.into()).await,
        };
        let schedules = match scripts.schedules(&user.id, &args.script_id).await {
            Ok(schedules) => schedules,
            Err(err) => return tool_error(err.into()).await,
        };
        Ok(CallToolResult::structured(json!({
            "script": script,
            "triggers": triggers,
            "versions": versions,
            "schedules": schedules,
        })))
    }

    #[tool(
        description = "Deploy a script: a compiled component (base64) under a name, as a new \
                       script or a new version. Returns its script_id and version; when it needs \
                       integrations you have not connected, the links to connect them."
    )]
    async fn deploy_script(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<DeployArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refused) = refused_scope(&parts, crate::store::Scope::Deploy, "deploy_script")?
        {
            return tool_error(refused).await;
        }
        let user = user(&parts)?;
        let component =
            match base64::engine::general_purpose::STANDARD.decode(args.component_base64.trim()) {
                Ok(component) => component,
                Err(err) => {
                    let error = ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_base64",
                        format!("`component_base64` must be standard base64: {err}"),
                    );
                    return tool_error(error).await;
                }
            };
        let declared: DeclaredMetadata = match optional(args.metadata, "metadata") {
            Ok(declared) => declared.unwrap_or_default(),
            Err(error) => return tool_error(error).await,
        };
        let retries = match optional(args.retries, "retries") {
            Ok(retries) => retries,
            Err(error) => return tool_error(error).await,
        };
        let limits = match optional(args.limits, "limits") {
            Ok(limits) => limits,
            Err(error) => return tool_error(error).await,
        };
        let request = DeployRequest {
            name: args.name,
            component,
            declared,
            retries,
            limits,
        };
        let version = match self.state.deploy.deploy(&user.id, request).await {
            Ok(version) => version,
            Err(DeployError::MissingCredentials(links)) => {
                // Said in words for the model to pass on: the links are the
                // user's next step, not a detail of an error.
                let mut text = String::from(
                    "This script needs credentials that are not connected yet. Open these \
                     links to connect them, then deploy again:",
                );
                for link in &links {
                    text.push_str(&format!("\n- {}: {}", link.integration, link.setup_url));
                }
                let error = DeployError::MissingCredentials(links).into();
                let mut result = tool_error(error).await?;
                result.content.insert(0, ContentBlock::text(text));
                return Ok(result);
            }
            Err(err) => return tool_error(err.into()).await,
        };
        let deployed = deployed(version);
        match serde_json::to_value(deployed) {
            Ok(body) => Ok(CallToolResult::structured(body)),
            Err(err) => Err(ErrorData::internal_error(err.to_string(), None)),
        }
    }

    #[tool(
        description = "Send an event: every one of your scripts with an on_event handler for \
                       its type runs with the payload. Returns the event id and the runs it \
                       started."
    )]
    async fn send_event(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<SendEventArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refused) = refused_scope(&parts, crate::store::Scope::Events, "send_event")? {
            return tool_error(refused).await;
        }
        let user = user(&parts)?;
        let state = &self.state;
        // As POST /v1/events/{type}: the same checks, limits and answer.
        if let Err(error) = check_payload(state, &args.payload) {
            return tool_error(error).await;
        }
        let envelope: Envelope =
            match serde_json::from_value(json!({ "id": args.id, "payload": args.payload })) {
                Ok(envelope) => envelope,
                Err(err) => return Err(ErrorData::internal_error(err.to_string(), None)),
            };
        let event = match event_from(user.id.clone(), args.event_type, envelope) {
            Ok(event) => event,
            Err(error) => return tool_error(error).await,
        };
        if let Err(wait) = state.guards.events.check(&user.id) {
            let error = ApiError::too_many(
                "event_rate_limited",
                format!(
                    "more than {} events a minute; retry in {} s",
                    state.guards.limits.events_per_minute,
                    wait.as_secs().max(1)
                ),
                wait,
            );
            return tool_error(error).await;
        }
        let event_id = event.event_id.clone();
        let limits = state.guards.limits.queue_limits();
        let body = match state.events.submit(&event, Some(limits)).await {
            Ok(Submitted::Ingested { duplicate, run_ids }) => {
                json!({ "event_id": event_id, "duplicate": duplicate, "run_ids": run_ids })
            }
            // On a cluster the runs are made by whichever node consumes it.
            Ok(Submitted::Published {
                duplicate,
                sequence,
            }) => json!({
                "event_id": event_id, "duplicate": duplicate, "run_ids": null,
                "stream_sequence": sequence,
            }),
            Err(err) => return tool_error(err.into()).await,
        };
        Ok(CallToolResult::structured(body))
    }

    #[tool(
        description = "List the integrations you have connected and those your scripts need, \
                       each with its standing (connected, reconnect_needed, rejected or \
                       missing) and a link to connect it."
    )]
    async fn connections(
        &self,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let user = user(&parts)?;
        // A setup link replaces the user's credential: it takes `deploy`,
        // as `POST /v1/integrations/{id}/setup_link` does.
        let links = refused_scope(&parts, crate::store::Scope::Deploy, "connections")?.is_none();
        let connections = match self.state.web.dashboard.connections(&user.id).await {
            Ok(connections) => connections,
            Err(err) => return tool_error(err.into()).await,
        };
        let items: Vec<_> = connections
            .into_iter()
            .map(|c| {
                json!({
                    "integration": c.integration,
                    "name": c.name,
                    "standing": c.standing.as_str(),
                    "used_by": c.used_by,
                    "setup_url": links.then_some(c.setup_url),
                })
            })
            .collect();
        Ok(CallToolResult::structured(json!({ "connections": items })))
    }
}

/// An optional JSON argument as `T`, or the REST API's `invalid_body` error.
fn optional<T: serde::de::DeserializeOwned>(
    value: Option<Value>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value).map(Some).map_err(|err| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("`{name}`: {err}"),
            )
        }),
    }
}
