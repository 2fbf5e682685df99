//! The run wrapper of [`tool`](crate::tool) handlers: arguments in, result
//! out, and the description of their input that deploy asks for.

use std::fmt::Display;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, HandlerDef, Invocation, Trigger};

/// Where a tool call's result goes.
const RESULT_PATH: &str = "/v1/tool/result";

/// The input of a tool that takes no arguments: an empty object.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// What a [`tool`](crate::tool) may return: `()`, a `serde_json::Value`,
/// or `Result<T: Serialize, E: Display>`.
#[diagnostic::on_unimplemented(
    message = "a #[tool] returns `()`, `serde_json::Value` or `Result<T: Serialize, E: Display>`, \
               not `{Self}`"
)]
pub trait IntoToolResult {
    /// The result as JSON, or why the tool failed.
    fn into_tool_result(self) -> Result<serde_json::Value, Error>;
}

impl IntoToolResult for () {
    fn into_tool_result(self) -> Result<serde_json::Value, Error> {
        Ok(serde_json::Value::Null)
    }
}

impl IntoToolResult for serde_json::Value {
    fn into_tool_result(self) -> Result<serde_json::Value, Error> {
        Ok(self)
    }
}

impl<T: Serialize, E: Display> IntoToolResult for Result<T, E> {
    fn into_tool_result(self) -> Result<serde_json::Value, Error> {
        let value = self.map_err(Error::msg)?;
        serde_json::to_value(value)
            .map_err(|err| Error::msg(format!("the tool's result is not JSON: {err}")))
    }
}

/// The JSON Schema of a tool's input `T`.
pub fn tool_schema<T: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).expect("a schema is JSON")
}

/// Runs a tool: its arguments from the payload (none is `{}`), its result
/// to roost for an agent's call, printed as JSON for a run started by hand.
pub fn run_tool<T, R>(invocation: &Invocation, tool: impl FnOnce(T) -> R) -> crate::Result
where
    T: DeserializeOwned,
    R: IntoToolResult,
{
    let payload = match &invocation.payload {
        serde_json::Value::Null => serde_json::json!({}),
        payload => payload.clone(),
    };
    let args = T::deserialize(payload)
        .map_err(|err| Error::msg(format!("the tool's arguments do not fit its input: {err}")))?;
    let result = tool(args).into_tool_result()?;
    if !matches!(invocation.trigger, Trigger::Mcp {}) {
        let text = serde_json::to_string_pretty(&result).expect("a JSON value serialises");
        println!("{text}");
        return Ok(());
    }
    send_result(&result)
}

fn send_result(result: &serde_json::Value) -> crate::Result {
    let body = serde_json::to_vec(&serde_json::json!({ "result": result }))
        .expect("a JSON value serialises");
    crate::internal::post(RESULT_PATH, &body, "the tool's result").map(drop)
}

/// Prints `{"tools": {"<handler>": <input schema>, …}}`: what deploy reads
/// to list the script's tools to agents.
pub(crate) fn describe(handlers: &[HandlerDef]) {
    let tools: serde_json::Map<String, serde_json::Value> = handlers
        .iter()
        .filter_map(|h| Some((h.name.to_string(), (h.describe?)())))
        .collect();
    let text = serde_json::to_string(&serde_json::json!({ "tools": tools }))
        .expect("a JSON value serialises");
    println!("{text}");
}

/// `#[tool]` takes an input type deriving its schema:
///
/// ```
/// use roost_sdk::schemars;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Args {
///     /// The city.
///     city: String,
/// }
///
/// #[roost_sdk::tool(description = "The weather for a city")]
/// fn forecast(args: Args) -> Result<String, String> {
///     Ok(format!("sunny in {}", args.city))
/// }
/// ```
///
/// and refuses, at compile time:
///
/// - no description:
///
/// ```compile_fail
/// #[roost_sdk::tool]
/// fn t() {}
/// ```
///
/// - an empty one:
///
/// ```compile_fail
/// #[roost_sdk::tool(description = " ")]
/// fn t() {}
/// ```
///
/// - two arguments:
///
/// ```compile_fail
/// #[roost_sdk::tool(description = "adds")]
/// fn t(a: u32, b: u32) -> Result<u32, String> {
///     Ok(a + b)
/// }
/// ```
///
/// - an input without a schema:
///
/// ```compile_fail
/// #[derive(serde::Deserialize)]
/// struct Args {
///     a: u32,
/// }
/// #[roost_sdk::tool(description = "adds")]
/// fn t(args: Args) -> Result<u32, String> {
///     Ok(args.a)
/// }
/// ```
///
/// - a result that is neither `()`, a JSON value nor a `Result`:
///
/// ```compile_fail
/// #[roost_sdk::tool(description = "counts")]
/// fn t() -> u32 {
///     1
/// }
/// ```
#[cfg(doctest)]
pub struct ToolCompileChecks;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_tool_without_arguments_takes_an_empty_object_only() {
        let schema = tool_schema::<NoArgs>();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn arguments_that_do_not_fit_fail_the_run_before_the_tool() {
        let invocation = Invocation {
            handler: Some("t".into()),
            trigger: Trigger::Manual,
            payload: json!({ "unexpected": 1 }),
        };
        let mut called = false;
        let result = run_tool(&invocation, |_: NoArgs| called = true);
        let error = result.unwrap_err().to_string();
        assert!(error.contains("do not fit its input"), "{error}");
        assert!(!called);
        let empty = Invocation {
            payload: serde_json::Value::Null,
            ..invocation
        };
        run_tool(&empty, |_: NoArgs| ()).unwrap();
    }
}
