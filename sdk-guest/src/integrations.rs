//! Host-mediated integration calls: the script names a method of an
//! integration definition and passes its input as JSON; roost checks the
//! input against the method's inputSchema, adds the user's credential on
//! the host, calls the provider (retrying and rate limiting as the
//! definition says), checks the answer against the outputSchema and
//! returns it. The credential never enters the sandbox, so this also works
//! for integrations whose credentials are host-side only.
//!
//! ```ignore
//! let shopify = roost_sdk::integrations::declare!("shopify");
//! let order: serde_json::Value = shopify.call("get_order", &serde_json::json!({ "id": "450789469" }))?;
//!
//! // Or untyped, for an integration declared elsewhere in the script:
//! let out = roost_sdk::integrations::call("shopify", "list_orders", &serde_json::json!({ "limit": 5 }))?;
//! ```
//!
//! The call is `POST http://roost.internal/v1/integrations/{id}/{method}`,
//! answered by roost itself: it never reaches a network from the sandbox.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::integration_error::{ErrorKind, IntegrationError};

/// Declares an integration (so deploy asks the user to connect it) and
/// returns an [`Integration`] handle for its host-side methods.
#[doc(inline)]
pub use crate::__integrations_declare as declare;

#[doc(hidden)]
#[macro_export]
macro_rules! __integrations_declare {
    ($integration:literal) => {{
        $crate::__declare_integration!($integration);
        $crate::integrations::Integration::new($integration)
    }};
}

/// A declared integration whose methods run on the host. Build it with
/// [`declare!`].
#[derive(Debug, Clone, Copy)]
pub struct Integration {
    id: &'static str,
}

impl Integration {
    /// A handle on `id`. Prefer [`declare!`], which also declares it; roost
    /// refuses calls to integrations the script does not declare.
    pub const fn new(id: &'static str) -> Self {
        Self { id }
    }

    /// The integration id.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// Calls `method` with `input` and decodes its output as `O`.
    pub fn call<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        method: &str,
        input: &I,
    ) -> Result<O, IntegrationError> {
        let input = serde_json::to_value(input)
            .map_err(|e| IntegrationError::new(self.id, ErrorKind::InvalidInput(e.to_string())))?;
        let output = call(self.id, method, &input)?;
        serde_json::from_value(output)
            .map_err(|e| IntegrationError::new(self.id, ErrorKind::Decode(e.to_string())))
    }
}

/// Calls `integration`'s `method` on the host with `input`, returning the
/// method's output (checked against its outputSchema by roost).
pub fn call(integration: &str, method: &str, input: &Value) -> Result<Value, IntegrationError> {
    let fail = |kind| IntegrationError::new(integration, kind);
    let valid = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !valid(integration) || !valid(method) {
        return Err(fail(ErrorKind::InvalidInput(format!(
            "`{integration}.{method}` is not an integration and method id"
        ))));
    }
    let url = format!("http://roost.internal/v1/integrations/{integration}/{method}");
    let body = serde_json::to_vec(input).expect("JSON values serialise");
    let response = crate::http::send("POST", &url, &[("content-type", "application/json")], &body)
        .map_err(|e| fail(ErrorKind::Http(e)))?;
    if (200..300).contains(&response.status) {
        return response
            .json()
            .map_err(|e| fail(ErrorKind::Decode(e.to_string())));
    }
    Err(fail(error_kind(response.status, &response.body)))
}

/// roost's error answer as a typed error: its own refusals by code,
/// provider refusals by the provider's status.
fn error_kind(status: u16, body: &[u8]) -> ErrorKind {
    let error: Value = serde_json::from_slice::<Value>(body)
        .ok()
        .map(|v| v["error"].clone())
        .unwrap_or(Value::Null);
    let code = error["code"].as_str().unwrap_or("").to_string();
    let message = error["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    match code.as_str() {
        "invalid_input" => ErrorKind::InvalidInput(message),
        "invalid_output" => ErrorKind::Decode(message),
        "not_connected" => ErrorKind::NotConnected(message),
        "provider_error" => match status {
            401 => ErrorKind::Unauthorized { message },
            403 => ErrorKind::Forbidden { message },
            429 => ErrorKind::RateLimited {
                retry_after: error["retryAfter"].as_u64().map(Duration::from_secs),
            },
            500..=599 => ErrorKind::Server { status, message },
            _ => ErrorKind::Api {
                status,
                code: error["providerCode"].as_str().map(str::to_string),
                message,
            },
        },
        "provider_unreachable" | "response_too_large" => ErrorKind::Server { status, message },
        "" => ErrorKind::Refused {
            code: format!("http_{status}"),
            message,
        },
        _ => ErrorKind::Refused { code, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roosts_answers_become_typed_errors() {
        let kind = |status, body: &str| error_kind(status, body.as_bytes());
        assert!(matches!(
            kind(400, r#"{"error":{"code":"invalid_input","message":"`maxResults`: 600 is greater than 500","field":"maxResults"}}"#),
            ErrorKind::InvalidInput(m) if m.contains("maxResults")
        ));
        assert!(matches!(
            kind(429, r#"{"error":{"code":"provider_error","message":"slow down","retryAfter":7}}"#),
            ErrorKind::RateLimited { retry_after: Some(d) } if d.as_secs() == 7
        ));
        assert!(matches!(
            kind(200, r#"{"error":{"code":"provider_error","message":"refused: channel_not_found","providerCode":"channel_not_found"}}"#),
            ErrorKind::Api { code: Some(c), .. } if c == "channel_not_found"
        ));
        assert!(matches!(
            kind(
                502,
                r#"{"error":{"code":"invalid_output","message":"`id`: wrong type"}}"#
            ),
            ErrorKind::Decode(_)
        ));
        assert!(matches!(
            kind(403, r#"{"error":{"code":"integration_not_declared","message":"declare it"}}"#),
            ErrorKind::Refused { code, .. } if code == "integration_not_declared"
        ));
        assert!(matches!(kind(500, "oops"), ErrorKind::Refused { .. }));
    }

    #[test]
    fn ids_are_checked_before_anything_is_sent() {
        let err = call("../admin", "x", &Value::Null).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::InvalidInput(_)));
    }
}
