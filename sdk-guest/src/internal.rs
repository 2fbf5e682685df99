//! Handing things to roost itself (`http://roost.internal`): a run's HTTP
//! response, its tool result, the events it emits and the runs it asks
//! for. One request each, answered with JSON or roost's error body.

use crate::Error;
use crate::http::Response;

/// POSTs `body` (JSON) to `path` on roost; its JSON answer, or an error
/// naming `what` was refused and roost's code and message.
pub(crate) fn post(path: &str, body: &[u8], what: &str) -> Result<serde_json::Value, Error> {
    let url = format!("http://roost.internal{path}");
    let answer = crate::http::send("POST", &url, &[("content-type", "application/json")], body)
        .map_err(|err| Error::msg(format!("could not hand {what} to roost: {err}")))?;
    if (200..300).contains(&answer.status) {
        return Ok(answer.json().unwrap_or_default());
    }
    Err(Error::msg(refusal(&answer, what)))
}

/// Why roost did not take `what`, from its error answer.
pub(crate) fn refusal(answer: &Response, what: &str) -> String {
    let error = answer
        .json::<serde_json::Value>()
        .map(|json| json["error"].clone())
        .unwrap_or_default();
    format!(
        "roost did not take {what} ({}): {}: {}",
        answer.status,
        error["code"].as_str().unwrap_or("unknown"),
        error["message"].as_str().unwrap_or("no message"),
    )
}
