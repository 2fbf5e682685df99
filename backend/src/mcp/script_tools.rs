//! A user's `#[tool]` handlers as MCP tools: listed with their input
//! schemas, called with checked arguments as recorded runs (trigger `mcp`)
//! that answer with the handler's result.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, MetaObject, Tool};
use serde_json::{Value, json};

use super::tools::tool_error;
use crate::http::{ApiError, AppState, check_payload, manual_run_error};
use crate::scripts::ScriptTool;
use crate::store::{RunStatus, TriggerKind, User};
use crate::triggers::ManualRequest;

/// Longest a call waits for its run; a run still going then is named in
/// the answer, to be read with `get_run_logs`.
pub(super) const CALL_WAIT: Duration = Duration::from_secs(300);

/// Most of a failed run's stderr an answer carries (its end).
const MAX_STDERR: usize = 8 * 1024;

/// Most schema violations one answer lists.
const MAX_VIOLATIONS: usize = 20;

/// The user's script tools as MCP lists them.
pub(super) async fn list(state: &AppState, user: &User) -> Result<Vec<Tool>, ErrorData> {
    let tools = state
        .scripts
        .tools(&user.id)
        .await
        .map_err(|err| ErrorData::internal_error(err.to_string(), None))?;
    Ok(tools.iter().map(listed).collect())
}

fn listed(tool: &ScriptTool) -> Tool {
    let schema = match &tool.tool.input_schema {
        Some(Value::Object(schema)) => schema.clone(),
        _ => JsonObject::from_iter([("type".to_string(), json!("object"))]),
    };
    let description = format!(
        "{} (script `{}`, handler `{}`)",
        tool.tool.description.trim(),
        tool.script.name,
        tool.handler
    );
    Tool::new(tool.name.clone(), description, Arc::new(schema))
}

/// Calls the user's script tool `name`, or `None` when they have none so
/// named.
pub(super) async fn call(
    state: &AppState,
    user: &User,
    name: &str,
    arguments: Option<JsonObject>,
) -> Result<Option<CallToolResult>, ErrorData> {
    let tools = state
        .scripts
        .tools(&user.id)
        .await
        .map_err(|err| ErrorData::internal_error(err.to_string(), None))?;
    let Some(tool) = tools.into_iter().find(|t| t.name == name) else {
        return Ok(None);
    };
    let arguments = Value::Object(arguments.unwrap_or_default());
    if let Err(error) = check_payload(state, &arguments) {
        return tool_error(error).await.map(Some);
    }
    if let Some(schema) = &tool.tool.input_schema
        && let Err(error) = check_arguments(schema, &arguments)
    {
        return tool_error(error).await.map(Some);
    }
    let request = ManualRequest {
        handler: Some(tool.handler.clone()),
        payload: arguments,
        idempotency_key: None,
        wait: Some(CALL_WAIT),
        trigger: TriggerKind::Mcp,
        not_before: None,
    };
    let started = match state.manual.start(&user.id, &tool.script.id, request).await {
        Ok(started) => started,
        Err(err) => return tool_error(manual_run_error(err)).await.map(Some),
    };
    Ok(Some(answer(started)))
}

/// The arguments against the tool's schema, each violation named by where
/// it is (a JSON pointer) so the agent can mend its call.
fn check_arguments(schema: &Value, arguments: &Value) -> Result<(), ApiError> {
    let validator = jsonschema::validator_for(schema).map_err(|err| {
        // Checked at deploy; a stored schema that no longer compiles is ours.
        tracing::error!(error = %err, "a stored tool schema does not compile");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "this tool's input schema could not be read".to_string(),
        )
    })?;
    let violations: Vec<Value> = validator
        .iter_errors(arguments)
        .take(MAX_VIOLATIONS)
        .map(|err| json!({ "at": err.instance_path().to_string(), "problem": err.to_string() }))
        .collect();
    if violations.is_empty() {
        return Ok(());
    }
    let first = violations[0]["problem"].as_str().unwrap_or_default();
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_arguments",
        format!("the arguments do not fit the tool's input schema: {first}"),
    )
    .with_details(json!({ "violations": violations })))
}

/// A finished call: the handler's result (structured when it is an
/// object), or why the run failed; the run's id in `_meta`.
fn answer(started: crate::triggers::manual::Started) -> CallToolResult {
    let run = started.run;
    let output = started.waited;
    let stdout = output
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.logs.stdout).into_owned())
        .unwrap_or_default();
    let stderr = output
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.logs.stderr).into_owned())
        .unwrap_or_default();
    let reply = output.and_then(|o| o.reply);
    let mut result = match run.status {
        RunStatus::Succeeded => {
            let value = reply
                .and_then(|reply| serde_json::from_slice::<Value>(&reply.body).ok())
                .unwrap_or(Value::Null);
            match value {
                Value::Object(_) => CallToolResult::structured(value),
                Value::Null => CallToolResult::success(vec![ContentBlock::text(stdout)]),
                Value::String(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
                other => CallToolResult::success(vec![ContentBlock::text(other.to_string())]),
            }
        }
        status if !status.is_terminal() => CallToolResult::structured_error(json!({ "error": {
            "code": "still_running",
            "message": format!(
                "the tool's run {} is still {status} after {} s; read its end with get_run_logs",
                run.id,
                CALL_WAIT.as_secs()
            ),
            "details": { "run_id": run.id, "status": status },
        }})),
        status => CallToolResult::structured_error(json!({ "error": {
            "code": "run_failed",
            "message": format!(
                "the tool's run {} {status}: {}",
                run.id,
                run.error.as_deref().unwrap_or("no reason recorded")
            ),
            "details": {
                "run_id": run.id,
                "status": status,
                "stderr": crate::triggers::tool::tail(&stderr, MAX_STDERR),
            },
        }})),
    };
    let mut meta = MetaObject::new();
    meta.0.insert("roost/run_id".into(), json!(run.id));
    result.meta = Some(meta);
    result
}
