//! Handlers offered to agents as MCP tools (`#[tool]` in the SDK): their
//! checks at deploy, the input schemas deploy asks the component for, and
//! the names agents call them by.

use std::time::Duration;

use roost_sandbox::metadata::{HandlerMeta, ScriptMetadata};
use roost_sandbox::{
    DESCRIBE_HANDLER, EgressPolicy, Invocation, LoadedGuest, RunLimits, Sandbox, ToolTrigger,
    Trigger,
};
use serde_json::Value;

/// Longest description a tool may have (as the SDK's macro allows).
const MAX_DESCRIPTION: usize = 1024;

/// Largest input schema kept per tool: every tool list carries it.
const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// What describing a component's tools may take: it runs no handler.
const DESCRIBE_LIMITS: RunLimits = RunLimits {
    timeout: Duration::from_secs(5),
    max_memory_bytes: 64 * 1024 * 1024,
    max_output_bytes: 1024 * 1024,
    fuel: None,
};

/// The name an agent calls `handler` of `script` by. Script names are
/// `[A-Za-z0-9._-]` and handlers Rust identifiers, both within what MCP
/// clients accept; the double underscore keeps them apart from roost's own
/// tools, none of which has one.
pub fn tool_name(script: &str, handler: &str) -> String {
    format!("{script}__{handler}")
}

/// The tools a script declares, each with its handler.
pub fn tools(handlers: &[HandlerMeta]) -> impl Iterator<Item = (&str, &ToolTrigger)> {
    handlers.iter().filter_map(|h| match &h.trigger {
        Trigger::Mcp(tool) => Some((h.name.as_str(), tool)),
        _ => None,
    })
}

/// Checks the tools a script declares: a description, and an input schema
/// that is a valid JSON Schema of an object (MCP's rule for tool inputs).
pub fn check_tools(handlers: &[HandlerMeta]) -> Result<(), String> {
    for (name, tool) in tools(handlers) {
        let description = tool.description.trim();
        if description.is_empty() || tool.description.len() > MAX_DESCRIPTION {
            return Err(format!(
                "tool `{name}`: its description says what it does in 1 to {MAX_DESCRIPTION} bytes"
            ));
        }
        if let Some(schema) = &tool.input_schema {
            check_schema(name, schema)?;
        }
    }
    Ok(())
}

fn check_schema(name: &str, schema: &Value) -> Result<(), String> {
    let size = serde_json::to_vec(schema).map(|v| v.len()).unwrap_or(0);
    if size > MAX_SCHEMA_BYTES {
        return Err(format!(
            "tool `{name}`: its input schema is {size} bytes; at most {MAX_SCHEMA_BYTES}"
        ));
    }
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(format!(
            "tool `{name}`: its input must be a JSON object (a struct), with `\"type\": \"object\"` in its schema"
        ));
    }
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|err| format!("tool `{name}`: its input schema is not a valid JSON Schema: {err}"))
}

/// `metadata` with every tool's input schema, asking the component to
/// describe the tools whose metadata has none. The component runs with no
/// network, no environment and tight limits, and no handler of it runs.
pub async fn describe(
    sandbox: &Sandbox,
    guest: &LoadedGuest,
    mut metadata: ScriptMetadata,
) -> Result<ScriptMetadata, String> {
    if tools(&metadata.handlers).all(|(_, tool)| tool.input_schema.is_some()) {
        return Ok(metadata);
    }
    let invocation = Invocation {
        handler: Some(DESCRIBE_HANDLER.into()),
        ..Invocation::default()
    };
    let outcome = sandbox
        .run(
            guest,
            &invocation,
            &DESCRIBE_LIMITS,
            &EgressPolicy::deny_all(),
        )
        .await
        .map_err(|err| format!("asking the component for its tools' inputs: {err}"))?;
    if !outcome.succeeded() {
        return Err(format!(
            "the component did not describe its tools' inputs ({:?}): {}",
            outcome.termination,
            outcome.stderr.to_text().trim()
        ));
    }
    let described: Value = serde_json::from_slice(&outcome.stdout.bytes).map_err(|err| {
        format!("the component described its tools in something other than JSON: {err}")
    })?;
    for handler in &mut metadata.handlers {
        let Trigger::Mcp(tool) = &mut handler.trigger else {
            continue;
        };
        if tool.input_schema.is_some() {
            continue;
        }
        let Some(schema) = described["tools"].get(&handler.name) else {
            return Err(format!(
                "tool `{}`: the component does not describe its input; build it with a roost SDK that has `#[tool]`",
                handler.name
            ));
        };
        check_schema(&handler.name, schema)?;
        tool.input_schema = Some(schema.clone());
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(description: &str, input_schema: Option<Value>) -> Vec<HandlerMeta> {
        vec![HandlerMeta {
            name: "t".into(),
            trigger: Trigger::Mcp(ToolTrigger {
                description: description.into(),
                input_schema,
            }),
        }]
    }

    #[test]
    fn a_tool_needs_a_description_and_an_object_schema() {
        let object = json!({ "type": "object", "properties": { "a": { "type": "string" } } });
        assert!(check_tools(&tool("adds", Some(object))).is_ok());
        assert!(
            check_tools(&tool("adds", None)).is_ok(),
            "described at deploy"
        );
        assert!(check_tools(&tool("  ", None)).is_err());
        assert!(check_tools(&tool(&"x".repeat(MAX_DESCRIPTION + 1), None)).is_err());
        let string = json!({ "type": "string" });
        assert!(check_tools(&tool("adds", Some(string))).is_err());
        let broken = json!({ "type": "object", "properties": { "a": { "type": 7 } } });
        assert!(check_tools(&tool("adds", Some(broken))).is_err());
    }

    #[test]
    fn tool_names_keep_script_and_handler_apart() {
        assert_eq!(tool_name("weather.v2", "forecast"), "weather.v2__forecast");
    }
}
