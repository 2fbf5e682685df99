//! [`Response`]: what an outbound request got back, and what an
//! [`on_http`](crate::on_http) handler answers.

use serde::Serialize;

/// An HTTP response with its whole body: what [`send`](super::send) and the
/// integration clients got back, or what an [`on_http`](crate::on_http)
/// handler answers its caller (build it with [`Response::new`],
/// [`Response::from_text`] or [`Response::from_json`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, names in lower case, in the order received (or
    /// added).
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn from_text(status: u16, text: impl Into<String>) -> Self {
        Self::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.into().into_bytes())
    }

    /// An `application/json` response with `value` serialised as its body.
    /// A value that does not serialise (a map with non-string keys, a
    /// `Serialize` impl that fails) gives a 500 with a text body saying so,
    /// rather than a wrong answer with the intended status.
    pub fn from_json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(status)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(err) => Self::from_text(
                500,
                format!("the handler's response body does not serialise as JSON: {err}"),
            ),
        }
    }

    /// This response with header `name: value` added (the name lower-cased;
    /// an existing header of that name is kept, so this can repeat one).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// This response with `body` as its body.
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::Response;

    #[test]
    fn new_has_no_headers_and_no_body() {
        let response = Response::new(204);
        assert_eq!(response.status, 204);
        assert!(response.headers.is_empty());
        assert!(response.body.is_empty());
    }

    #[test]
    fn text_sets_content_type_and_body() {
        let response = Response::from_text(201, "créé");
        assert_eq!(response.status, 201);
        assert_eq!(
            response.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(response.text(), "créé");
    }

    #[test]
    fn json_serialises_the_value() {
        let response = Response::from_json(200, &serde_json::json!({ "ok": true }));
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(
            response.json::<serde_json::Value>().unwrap(),
            serde_json::json!({ "ok": true })
        );
    }

    #[test]
    fn json_that_does_not_serialise_is_a_500() {
        let mut bad = BTreeMap::new();
        bad.insert(vec![1u8], "keys must be strings");
        let response = Response::from_json(200, &bad);
        assert_eq!(response.status, 500);
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(response.text().contains("does not serialise as JSON"));
    }

    #[test]
    fn builders_add_headers_and_replace_the_body() {
        let response = Response::from_text(200, "old")
            .with_header("X-Echo", "yes")
            .with_header("x-echo", "again")
            .with_body(b"new".to_vec());
        assert_eq!(response.header("x-echo"), Some("yes"));
        assert_eq!(
            response.headers,
            [
                ("content-type".into(), "text/plain; charset=utf-8".into()),
                ("x-echo".into(), "yes".into()),
                ("x-echo".into(), "again".into()),
            ]
        );
        assert_eq!(response.body, b"new");
    }
}
