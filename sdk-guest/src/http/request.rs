//! [`Request`]: the HTTP request an [`on_http`](crate::on_http) handler
//! answers, as roost hands it over in the run's payload.

use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{Error, Invocation};

/// The request that started an [`on_http`](crate::on_http) handler, body
/// read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method, upper case (`POST`).
    pub method: String,
    /// Path the handler was declared with (`/orders`).
    pub path: String,
    /// The query string as sent, without `?`; empty when there is none.
    /// [`query_param`](Self::query_param) decodes one parameter.
    pub query: String,
    /// Request headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// The payload roost sends for an HTTP run.
#[derive(Deserialize)]
struct Payload {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body_base64: String,
}

impl Request {
    /// The request carried by an HTTP run's invocation.
    pub fn from_invocation(invocation: &Invocation) -> Result<Self, Error> {
        Self::from_payload(&invocation.payload)
    }

    /// Reads a request from roost's payload, `{"method", "path", "query",
    /// "headers": [[name, value], …], "body_base64"}`.
    pub fn from_payload(payload: &serde_json::Value) -> Result<Self, Error> {
        let payload = Payload::deserialize(payload).map_err(|err| {
            Error::msg(format!(
                "the run's payload is not an HTTP request (method, path, query, \
                 headers, body_base64): {err}"
            ))
        })?;
        let body = base64::engine::general_purpose::STANDARD
            .decode(&payload.body_base64)
            .map_err(|err| {
                Error::msg(format!(
                    "the HTTP request's body_base64 is not standard base64: {err}"
                ))
            })?;
        Ok(Self {
            method: payload.method,
            path: payload.path,
            query: payload.query,
            headers: payload
                .headers
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value))
                .collect(),
            body,
        })
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }

    /// The first value of query parameter `name`, percent-decoded (`+` is a
    /// space); `Some("")` for a parameter without `=`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        super::query::param(&self.query, name)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Request;

    fn good() -> serde_json::Value {
        json!({
            "method": "POST",
            "path": "/orders",
            "query": "a=1&name=J%C3%B6rg+M",
            "headers": [["content-type", "application/json"], ["X-Foo", "bar"], ["x-foo", "baz"]],
            "body_base64": "eyJpZCI6N30=",
        })
    }

    #[test]
    fn reads_a_well_formed_payload() {
        let request = Request::from_payload(&good()).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/orders");
        assert_eq!(request.query, "a=1&name=J%C3%B6rg+M");
        assert_eq!(request.headers[1], ("x-foo".into(), "bar".into()));
        assert_eq!(request.header("X-FOO"), Some("bar"));
        assert_eq!(request.header("missing"), None);
        assert_eq!(request.text(), r#"{"id":7}"#);
        assert_eq!(
            request.json::<serde_json::Value>().unwrap(),
            json!({ "id": 7 })
        );
        assert_eq!(request.query_param("a").as_deref(), Some("1"));
        assert_eq!(request.query_param("name").as_deref(), Some("Jörg M"));
        assert_eq!(request.query_param("b"), None);
    }

    #[test]
    fn an_empty_body_and_query_are_fine() {
        let mut payload = good();
        payload["query"] = json!("");
        payload["body_base64"] = json!("");
        let request = Request::from_payload(&payload).unwrap();
        assert!(request.body.is_empty());
        assert_eq!(request.query_param("a"), None);
        assert!(request.json::<serde_json::Value>().is_err());
    }

    #[test]
    fn bad_base64_is_an_error() {
        for bad in ["not base64!", "eyJpZCI6N30", "eyJpZCI6N30=="] {
            let mut payload = good();
            payload["body_base64"] = json!(bad);
            let err = Request::from_payload(&payload).unwrap_err().to_string();
            assert!(err.contains("body_base64"), "{bad}: {err}");
        }
    }

    #[test]
    fn missing_or_mistyped_fields_are_errors() {
        for field in ["method", "path", "query", "headers", "body_base64"] {
            let mut payload = good();
            payload.as_object_mut().unwrap().remove(field);
            let err = Request::from_payload(&payload).unwrap_err().to_string();
            assert!(err.contains("not an HTTP request"), "{field}: {err}");
            assert!(err.contains(field), "{field}: {err}");
        }
        let mut payload = good();
        payload["headers"] = json!({ "content-type": "text/plain" });
        assert!(Request::from_payload(&payload).is_err());
        assert!(Request::from_payload(&serde_json::Value::Null).is_err());
    }
}
