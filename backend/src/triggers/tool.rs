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

/// Longest tool name: what the model APIs behind most agents accept.
const MAX_TOOL_NAME: usize = 64;

/// The name an agent calls `handler` of `script` by. The double underscore
/// keeps them apart from roost's own tools, none of which has one.
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

/// Checks the tools script `script` declares: a name agents' models accept
/// (`[A-Za-z0-9_-]{1,64}`, though MCP itself allows dots), a description,
/// and an input schema that is a valid JSON Schema of an object (MCP's rule
/// for tool inputs).
pub fn check_tools(script: &str, handlers: &[HandlerMeta]) -> Result<(), String> {
    for (name, tool) in tools(handlers) {
        let called = tool_name(script, name);
        let valid = called.len() <= MAX_TOOL_NAME
            && called
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(format!(
                "tool `{name}`: agents call it `{called}`, which must be 1 to {MAX_TOOL_NAME} of \
                 [A-Za-z0-9_-]; give the script a shorter name without dots"
            ));
        }
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
/// network, no environment, no host services and tight limits; one built
/// with the SDK runs no handler (one without it runs its entry point, in
/// the same sandbox).
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
            tail(&outcome.stderr.to_text(), 2048)
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

/// The last `max` bytes of `text` (at a character boundary), trimmed: what
/// an error keeps of a long output.
pub(crate) fn tail(text: &str, max: usize) -> &str {
    let text = text.trim();
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
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
            flow: None,
        }]
    }

    #[test]
    fn a_tool_needs_a_description_and_an_object_schema() {
        let object = json!({ "type": "object", "properties": { "a": { "type": "string" } } });
        assert!(check_tools("s", &tool("adds", Some(object))).is_ok());
        assert!(
            check_tools("s", &tool("adds", None)).is_ok(),
            "described at deploy"
        );
        assert!(check_tools("s", &tool("  ", None)).is_err());
        assert!(check_tools("s", &tool(&"x".repeat(MAX_DESCRIPTION + 1), None)).is_err());
        let string = json!({ "type": "string" });
        assert!(check_tools("s", &tool("adds", Some(string))).is_err());
        let broken = json!({ "type": "object", "properties": { "a": { "type": 7 } } });
        assert!(check_tools("s", &tool("adds", Some(broken))).is_err());
        // Names agents' models refuse: a dot, or too long.
        assert!(check_tools("weather.v2", &tool("adds", None)).is_err());
        assert!(check_tools(&"s".repeat(62), &tool("adds", None)).is_err());
        assert!(check_tools(&"s".repeat(59), &tool("adds", None)).is_ok());
    }

    #[test]
    fn tool_names_keep_script_and_handler_apart() {
        assert_eq!(tool_name("weather", "forecast"), "weather__forecast");
    }
}
