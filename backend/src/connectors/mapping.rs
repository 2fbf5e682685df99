//! The declarative side of a connector: a method's `http` mapping turned
//! into a provider request, and the provider's answer into the method's
//! output. Methods whose API needs code implement [`OperationCode`]
//! themselves (see `code/`).

use serde_json::{Map, Value};

use super::error::CallError;
use super::schema::SchemaViolation;
use crate::registry::{MethodHttp, placeholders};

/// A request to the provider, relative to the integration's base URL. The
/// credential is added later by the connector, never here.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRequest {
    /// HTTP method.
    pub method: http::Method,
    /// Percent-encoded path (`/v1/items/a%2Fb`).
    pub path: String,
    /// Query parameters, in order; a name may repeat.
    pub query: Vec<(String, String)>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Value>,
    /// Whether sending it twice is harmless.
    pub idempotent: bool,
}

/// The provider's answer.
#[derive(Debug, Clone)]
pub struct ProviderResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Body, at most the transport's cap.
    pub body: bytes::Bytes,
}

impl ProviderResponse {
    /// The body as JSON; an empty body is `{}` (a 204, a 202 with nothing).
    pub fn json(&self) -> Result<Value, CallError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Map::new()));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            CallError::InvalidOutput(SchemaViolation {
                field: String::new(),
                reason: format!("the answer is not JSON ({e})"),
            })
        })
    }
}

/// How one method turns input into a request and an answer into output.
pub trait OperationCode: Send + Sync {
    /// The provider request for `input` (already checked against the
    /// inputSchema). `settings` are the server's integration settings.
    fn request(
        &self,
        input: &Value,
        settings: &Map<String, Value>,
    ) -> Result<ProviderRequest, CallError>;

    /// The method's output from a 2xx answer (checked against the
    /// outputSchema afterwards).
    fn output(&self, response: &ProviderResponse) -> Result<Value, CallError>;
}

/// A method executed from its definition's mapping alone.
pub struct Declarative {
    http: MethodHttp,
}

impl Declarative {
    /// The executor of `http`.
    pub fn new(http: MethodHttp) -> Self {
        Self { http }
    }
}

impl OperationCode for Declarative {
    fn request(
        &self,
        input: &Value,
        settings: &Map<String, Value>,
    ) -> Result<ProviderRequest, CallError> {
        let http = &self.http;
        let mut rest = input.as_object().cloned().unwrap_or_default();
        let mut path = String::new();
        let mut template = http.path.as_str();
        for name in http.path_params() {
            let token = format!("{{{name}}}");
            let at = template
                .find(&token)
                .expect("placeholder comes from this template");
            path.push_str(&template[..at]);
            let value = rest.remove(name).unwrap_or(Value::Null);
            let text = scalar(&value).filter(|t| !t.is_empty()).ok_or_else(|| {
                CallError::InvalidInput(SchemaViolation {
                    field: name.to_string(),
                    reason: "must be a non-empty string or number (it is part of the path)".into(),
                })
            })?;
            if is_dot_segment(&text) {
                return Err(CallError::InvalidInput(SchemaViolation {
                    field: name.to_string(),
                    reason: "must not be `.` or `..` (it is a path segment, and would climb \
                             out of the method's path)"
                        .into(),
                }));
            }
            path.push_str(&encode_segment(&text));
            template = &template[at + token.len()..];
        }
        path.push_str(template);

        let query_fields: Vec<String> = match &http.query {
            Some(fields) => fields.clone(),
            None if !http.has_body() => rest.keys().cloned().collect(),
            None => Vec::new(),
        };
        let mut query = Vec::new();
        for field in &query_fields {
            match rest.remove(field) {
                Some(Value::Array(items)) => {
                    query.extend(items.iter().filter_map(scalar).map(|v| (field.clone(), v)));
                }
                Some(Value::Null) | None => {}
                Some(other) => query.push((
                    field.clone(),
                    scalar(&other).unwrap_or_else(|| other.to_string()),
                )),
            }
        }

        let body = http.has_body().then(|| {
            let mut body = http.body_defaults.clone().unwrap_or_default();
            body.extend(rest);
            match &http.body_key {
                Some(key) => {
                    let mut wrapped = Map::new();
                    wrapped.insert(key.clone(), Value::Object(body));
                    Value::Object(wrapped)
                }
                None => Value::Object(body),
            }
        });

        let headers = http
            .headers
            .iter()
            .map(|(name, template)| (name.clone(), fill_settings(template, settings)))
            .collect();
        Ok(ProviderRequest {
            method: http::Method::from_bytes(http.method.as_bytes())
                .expect("definitions name a standard method"),
            path,
            query,
            headers,
            body,
            idempotent: http.is_idempotent(),
        })
    }

    fn output(&self, response: &ProviderResponse) -> Result<Value, CallError> {
        let http = &self.http;
        let mut value = response.json()?;
        if let Some(ok_field) = &http.ok_field
            && value.get(ok_field) == Some(&Value::Bool(false))
        {
            let code = http
                .error_field
                .as_ref()
                .and_then(|f| value.get(f))
                .and_then(Value::as_str)
                .map(str::to_string);
            return Err(CallError::Provider {
                status: response.status,
                message: code.clone().map_or_else(
                    || format!("`{ok_field}` is false"),
                    |c| format!("refused: {c}"),
                ),
                code,
                retry_after: None,
            });
        }
        if let Some(pointer) = &http.extract {
            value = value.pointer(pointer).cloned().ok_or_else(|| {
                CallError::InvalidOutput(SchemaViolation {
                    field: String::new(),
                    reason: format!("the answer has nothing at `{pointer}`"),
                })
            })?;
        }
        if let Some(key) = &http.wrap_as {
            let mut wrapped = Map::new();
            wrapped.insert(key.clone(), value);
            value = Value::Object(wrapped);
        }
        Ok(value)
    }
}

/// A string or number as text; other values have no scalar form.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether a server would read `text` as the segment `.` or `..`, as is or
/// once it has decoded percent-escapes (`%2e`, `%252e`) one or more times.
fn is_dot_segment(text: &str) -> bool {
    let mut decoded = text.to_ascii_lowercase();
    for _ in 0..4 {
        decoded = decoded.replace("%25", "%").replace("%2e", ".");
    }
    decoded == "." || decoded == ".."
}

/// One path segment, percent-encoded: a `/` or `?` in a value stays in its
/// segment instead of reshaping the path.
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `{config.key}` placeholders replaced by the server's settings.
fn fill_settings(template: &str, settings: &Map<String, Value>) -> String {
    let mut out = template.to_string();
    for placeholder in placeholders(template) {
        let key = placeholder.trim_start_matches("config.");
        let value = settings.get(key).and_then(scalar).unwrap_or_default();
        out = out.replace(&format!("{{{placeholder}}}"), &value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(value: Value) -> Declarative {
        Declarative::new(serde_json::from_value(value).unwrap())
    }

    fn answer(status: u16, body: Value) -> ProviderResponse {
        ProviderResponse {
            status,
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn a_get_puts_the_path_fields_in_the_path_and_the_rest_in_the_query() {
        let op = mapping(
            json!({ "method": "GET", "path": "/repos/{owner}/{repo}/issues",
            "headers": { "X-Api-Version": "{config.apiVersion}" } }),
        );
        let settings = json!({ "apiVersion": "2022-11-28" })
            .as_object()
            .unwrap()
            .clone();
        let request = op
            .request(
                &json!({ "owner": "a b", "repo": "x/y", "state": "open", "labels": ["bug", "ui"], "page": 2, "skip": null }),
                &settings,
            )
            .unwrap();
        assert_eq!(request.method, http::Method::GET);
        assert_eq!(request.path, "/repos/a%20b/x%2Fy/issues");
        assert_eq!(
            request.query,
            [
                ("labels", "bug"),
                ("labels", "ui"),
                ("page", "2"),
                ("state", "open")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(
            request.headers,
            vec![("X-Api-Version".to_string(), "2022-11-28".to_string())]
        );
        assert!(request.body.is_none());
        assert!(request.idempotent);
    }

    #[test]
    fn a_post_sends_the_rest_as_a_wrapped_body_with_defaults() {
        let op = mapping(json!({ "method": "POST", "path": "/webhooks.json",
            "bodyKey": "webhook", "bodyDefaults": { "format": "json" } }));
        let request = op
            .request(
                &json!({ "topic": "orders/create", "address": "https://x" }),
                &Map::new(),
            )
            .unwrap();
        assert_eq!(
            request.body.unwrap(),
            json!({ "webhook": { "format": "json", "topic": "orders/create", "address": "https://x" } })
        );
        assert!(request.query.is_empty());
        assert!(!request.idempotent);
    }

    #[test]
    fn answers_are_extracted_wrapped_or_refused() {
        let extract =
            mapping(json!({ "method": "GET", "path": "/orders/{id}.json", "extract": "/order" }));
        assert_eq!(
            extract
                .output(&answer(200, json!({ "order": { "id": 1 } })))
                .unwrap(),
            json!({ "id": 1 })
        );
        let missing = extract
            .output(&answer(200, json!({ "orders": [] })))
            .unwrap_err();
        assert_eq!(missing.code(), "invalid_output");

        let wrap = mapping(json!({ "method": "GET", "path": "/issues", "wrapAs": "issues" }));
        assert_eq!(
            wrap.output(&answer(200, json!([1, 2]))).unwrap(),
            json!({ "issues": [1, 2] })
        );

        let slack = mapping(json!({ "method": "POST", "path": "/api/chat.postMessage",
            "okField": "ok", "errorField": "error" }));
        let refused = slack
            .output(&answer(
                200,
                json!({ "ok": false, "error": "channel_not_found" }),
            ))
            .unwrap_err();
        assert!(
            matches!(&refused, CallError::Provider { code: Some(c), .. } if c == "channel_not_found")
        );
        assert!(slack.output(&answer(200, json!({ "ok": true }))).is_ok());

        let not_json = ProviderResponse {
            status: 200,
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from_static(b"<html>"),
        };
        assert_eq!(wrap.output(&not_json).unwrap_err().code(), "invalid_output");
    }

    #[test]
    fn dot_segments_are_refused_in_every_spelling() {
        let get = mapping(json!({ "method": "GET", "path": "/widgets/{id}" }));
        for bad in [".", "..", "%2e", "%2E%2e", ".%2e", "%252e%252E", "%25252e."] {
            let err = get.request(&json!({ "id": bad }), &Map::new()).unwrap_err();
            assert!(
                matches!(&err, CallError::InvalidInput(v) if v.field == "id"),
                "{bad}: {err:?}"
            );
        }
        for fine in ["...", ".a", "a.", "%2e%2e%2e", "v1.2"] {
            let request = get.request(&json!({ "id": fine }), &Map::new()).unwrap();
            assert!(request.path.starts_with("/widgets/"), "{fine}");
        }
    }

    #[test]
    fn a_path_field_that_is_not_a_scalar_is_refused() {
        let op = mapping(json!({ "method": "GET", "path": "/items/{id}" }));
        let err = op
            .request(&json!({ "id": { "a": 1 } }), &Map::new())
            .unwrap_err();
        assert_eq!(err.field(), Some("id"));
    }
}
