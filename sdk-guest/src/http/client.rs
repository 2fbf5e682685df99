use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Response;
use crate::integration::{Defaults, IntegrationError, LazyConnection, decode};

/// Declares the integration named by the literal and returns a [`Client`]
/// for it: `let api = roost_sdk::http::init!("openai");`.
#[doc(hidden)]
#[macro_export]
macro_rules! __http_init {
    ($integration:literal) => {{
        $crate::__declare_integration!($integration);
        $crate::http::Client::for_integration($integration)
    }};
}

/// A client for an integration's API: paths are relative to the
/// integration's base URL, and the user's credential goes where the
/// integration's definition says (a header such as `Authorization: Bearer …`,
/// or a query parameter). Error statuses become typed
/// [`IntegrationError`]s.
#[derive(Debug)]
pub struct Client {
    connection: LazyConnection,
}

impl Client {
    /// A client for `integration`. Prefer [`init!`](crate::http::init),
    /// which also declares it; without the declaration roost neither injects
    /// the credential nor lets requests reach the API's host.
    pub const fn for_integration(integration: &'static str) -> Self {
        Self {
            connection: LazyConnection::new(Defaults {
                integration,
                base_url: None,
                bearer_env: None,
            }),
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Response, IntegrationError> {
        self.send("GET", path, &[], &[])
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Response, IntegrationError> {
        self.send("DELETE", path, &[], &[])
    }

    /// `POST path` with a JSON body.
    pub fn post_json(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Response, IntegrationError> {
        self.send_json("POST", path, body)
    }

    /// `method path` with a JSON body.
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Response, IntegrationError> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            IntegrationError::new(
                self.connection.integration(),
                crate::integration::ErrorKind::InvalidInput(e.to_string()),
            )
        })?;
        self.send(
            method,
            path,
            &[("content-type", "application/json; charset=utf-8")],
            &bytes,
        )
    }

    /// `GET path`, decoding the JSON answer.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, IntegrationError> {
        decode(self.connection.integration(), &self.get(path)?)
    }

    /// Any request; `path` (with its query) is joined to the base URL.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, IntegrationError> {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        self.connection.get()?.send(method, &path, headers, body)
    }
}
