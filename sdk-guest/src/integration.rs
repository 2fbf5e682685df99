//! What the integration clients share: the connection each client opens
//! lazily from the variables roost injects into a run (and, re-exported,
//! the typed error).
//!
//! For every integration a script declares, roost sets the credential's env
//! var (`GMAIL_ACCESS_TOKEN`, …) and `ROOST_INTEGRATION_<ID>`, a JSON object
//! with the integration's base URL and where its credential goes:
//!
//! ```text
//! ROOST_INTEGRATION_SLACK={"baseUrl":"https://slack.com",
//!   "auth":{"envVar":"SLACK_ACCESS_TOKEN","in":"header","name":"Authorization","prefix":"Bearer "}}
//! ```
//!
//! The base URL follows the integration's config on the server, which is how
//! tests and proxies point a client somewhere else.

use std::cell::{OnceCell, RefCell};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::http::{self, Response};
pub use crate::integration_error::{ErrorKind, IntegrationError};
use crate::refusal::Refused;

/// Where a request carries the credential.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Placement {
    /// `header` or `query`.
    #[serde(rename = "in")]
    pub(crate) location: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) prefix: Option<String>,
}

/// `ROOST_INTEGRATION_<ID>`, as roost writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    base_url: Option<String>,
    /// The integration's credentials stay on the host.
    #[serde(default)]
    host_only: bool,
    #[serde(default)]
    auth: Option<AuthDescriptor>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthDescriptor {
    env_var: String,
    #[serde(flatten)]
    placement: Placement,
}

/// What a typed client assumes when roost has not said otherwise (a run
/// outside roost, or an older server).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    pub(crate) integration: &'static str,
    pub(crate) base_url: Option<&'static str>,
    /// Env var of a bearer token, when the integration has one.
    pub(crate) bearer_env: Option<&'static str>,
}

/// An integration's base URL and credential, read from the env once.
#[derive(Debug)]
pub(crate) struct Connection {
    integration: &'static str,
    base_url: String,
    /// Where the credential goes, and its value (renewed after a 401).
    auth: Option<(AuthDescriptor, RefCell<String>)>,
}

/// `ROOST_INTEGRATION_<ID>` as roost set it, or an empty descriptor.
fn read_descriptor(integration: &str) -> Result<Descriptor, IntegrationError> {
    let var = descriptor_var(integration);
    match std::env::var(&var) {
        Ok(json) => serde_json::from_str::<Descriptor>(&json).map_err(|e| {
            IntegrationError::new(
                integration,
                ErrorKind::Config(format!("{var} is not valid: {e}")),
            )
        }),
        Err(_) => Ok(Descriptor {
            base_url: None,
            host_only: false,
            auth: None,
        }),
    }
}

/// The name of the variable describing `integration`.
pub(crate) fn descriptor_var(integration: &str) -> String {
    let id: String = integration
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' => c,
            _ => '_',
        })
        .collect();
    format!("ROOST_INTEGRATION_{id}")
}

impl Connection {
    fn from_env(defaults: Defaults) -> Result<Self, IntegrationError> {
        let integration = defaults.integration;
        let fail = |kind| IntegrationError::new(integration, kind);
        let var = descriptor_var(integration);
        let descriptor = read_descriptor(integration)?;
        if descriptor.host_only {
            return Err(fail(ErrorKind::Config(format!(
                "{integration}'s credentials stay on the host (credentialDelivery: host), so \
                 scripts cannot call it directly; use roost_sdk::integrations::call"
            ))));
        }
        let base_url = descriptor
            .base_url
            .or_else(|| defaults.base_url.map(str::to_string))
            .ok_or_else(|| {
                fail(ErrorKind::Config(format!(
                    "{var} is not set, so the API's base URL is unknown (roost sets it for \
                     integrations the script declares)"
                )))
            })?;
        let auth = descriptor.auth.or_else(|| {
            defaults.bearer_env.map(|env_var| AuthDescriptor {
                env_var: env_var.to_string(),
                placement: Placement {
                    location: "header".into(),
                    name: "Authorization".into(),
                    prefix: Some("Bearer ".into()),
                },
            })
        });
        let auth = match auth {
            None => None,
            Some(auth) => match std::env::var(&auth.env_var) {
                Ok(value) if !value.trim().is_empty() => Some((auth, RefCell::new(value))),
                _ => {
                    return Err(fail(ErrorKind::MissingCredential {
                        env_var: auth.env_var,
                    }));
                }
            },
        };
        Ok(Self {
            integration,
            base_url: base_url.trim_end_matches('/').to_string(),
            auth,
        })
    }

    /// Sends `method path` (path and query, starting with `/`) with the
    /// credential in place, and turns error statuses into typed errors.
    ///
    /// A 401 is reported to roost, which renews the credential once (an
    /// OAuth refresh) and hands over the new value for one more try, or
    /// answers with where the user reconnects or replaces it.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, IntegrationError> {
        let response = self.send_once(method, path, headers, body)?;
        if response.status != 401 {
            return check_status(self.integration, response);
        }
        let Some((auth, value)) = &self.auth else {
            return check_status(self.integration, response);
        };
        match crate::refusal::report(self.integration) {
            Refused::Renewed(env) => match env.get(&auth.env_var) {
                Some(renewed) => {
                    value.replace(renewed.clone());
                    let retried = self.send_once(method, path, headers, body)?;
                    check_status(self.integration, retried)
                }
                None => check_status(self.integration, response),
            },
            Refused::Reconnect(how) => Err(IntegrationError::new(
                self.integration,
                ErrorKind::NotConnected(format!(
                    "{how} (the provider said: {})",
                    error_message(&response)
                )),
            )),
            Refused::Unknown => check_status(self.integration, response),
        }
    }

    /// One request with the credential as it is now.
    fn send_once(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, IntegrationError> {
        let mut url = format!("{}{path}", self.base_url);
        let mut all: Vec<(&str, &str)> = vec![("accept", "application/json")];
        all.extend_from_slice(headers);
        let header_value;
        if let Some((auth, value)) = &self.auth {
            let placement = &auth.placement;
            let with_prefix = format!(
                "{}{}",
                placement.prefix.as_deref().unwrap_or(""),
                value.borrow()
            );
            if placement.location == "query" {
                let pair = http::Query::new().push(&placement.name, with_prefix);
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(pair.as_str());
            } else {
                header_value = with_prefix;
                all.push((placement.name.as_str(), header_value.as_str()));
            }
        }
        http::send(method, &url, &all, body)
            .map_err(|err| IntegrationError::new(self.integration, ErrorKind::Http(err)))
    }

    /// Sends a JSON body (or none) and decodes a JSON answer.
    pub(crate) fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T, IntegrationError> {
        let response = match body {
            Some(body) => {
                let bytes = serde_json::to_vec(body).map_err(|e| {
                    IntegrationError::new(self.integration, ErrorKind::InvalidInput(e.to_string()))
                })?;
                self.send(
                    method,
                    path,
                    &[("content-type", "application/json; charset=utf-8")],
                    &bytes,
                )?
            }
            None => self.send(method, path, &[], &[])?,
        };
        decode(self.integration, &response)
    }
}

/// Decodes a JSON body into `T`, as a typed error when it does not fit.
pub(crate) fn decode<T: DeserializeOwned>(
    integration: &str,
    response: &Response,
) -> Result<T, IntegrationError> {
    response
        .json()
        .map_err(|e| IntegrationError::new(integration, ErrorKind::Decode(e.to_string())))
}

/// 2xx passes; everything else becomes the matching [`ErrorKind`].
fn check_status(integration: &str, response: Response) -> Result<Response, IntegrationError> {
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let message = error_message(&response);
    let kind = match status {
        401 => ErrorKind::Unauthorized { message },
        403 => ErrorKind::Forbidden { message },
        429 => ErrorKind::RateLimited {
            retry_after: response
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        500..=599 => ErrorKind::Server { status, message },
        _ => ErrorKind::Api {
            status,
            code: None,
            message,
        },
    };
    Err(IntegrationError::new(integration, kind))
}

/// The provider's explanation: Google's `error.message`, Slack's `error`,
/// SendGrid's `errors[0].message`, a `message` field, or the start of the
/// body.
fn error_message(response: &Response) -> String {
    if let Ok(json) = response.json::<serde_json::Value>() {
        let found = json["error"]["message"]
            .as_str()
            .or_else(|| json["error"].as_str())
            .or_else(|| json["errors"][0]["message"].as_str())
            .or_else(|| json["message"].as_str());
        if let Some(message) = found {
            return message.to_string();
        }
    }
    let text = response.text();
    let text = text.trim();
    if text.is_empty() {
        return "no details".to_string();
    }
    text.chars().take(300).collect()
}

/// A connection opened on first use, so building a client never fails and a
/// script that never calls an integration never needs its credential.
#[derive(Debug)]
pub(crate) struct LazyConnection {
    defaults: Defaults,
    cell: OnceCell<Connection>,
    host_only: OnceCell<bool>,
}

impl LazyConnection {
    pub(crate) const fn new(defaults: Defaults) -> Self {
        Self {
            defaults,
            cell: OnceCell::new(),
            host_only: OnceCell::new(),
        }
    }

    /// The connection, reading the env the first time.
    pub(crate) fn get(&self) -> Result<&Connection, IntegrationError> {
        if let Some(connection) = self.cell.get() {
            return Ok(connection);
        }
        let connection = Connection::from_env(self.defaults)?;
        Ok(self.cell.get_or_init(|| connection))
    }

    pub(crate) fn integration(&self) -> &'static str {
        self.defaults.integration
    }

    /// Whether the integration's credentials stay on the host, so typed
    /// clients must call its methods through roost
    /// ([`crate::integrations`]) instead of the provider.
    /// Read once, like the connection: the env of a run does not change.
    pub(crate) fn host_only(&self) -> bool {
        *self
            .host_only
            .get_or_init(|| read_descriptor(self.defaults.integration).is_ok_and(|d| d.host_only))
    }

    /// The host-side handle of the same integration.
    pub(crate) fn on_host(&self) -> crate::integrations::Integration {
        crate::integrations::Integration::new(self.defaults.integration)
    }
}

/// A method of an integration with the JSON Schemas of its input and output,
/// as the SDK's types produce them.
#[cfg(feature = "schema")]
#[derive(Debug, Clone)]
pub struct MethodSchema {
    /// The method id in the integration's definition.
    pub id: &'static str,
    /// Schema of the input type.
    pub input: schemars::Schema,
    /// Schema of the output type.
    pub output: schemars::Schema,
}

#[cfg(feature = "schema")]
impl MethodSchema {
    pub(crate) fn of<I: schemars::JsonSchema, O: schemars::JsonSchema>(id: &'static str) -> Self {
        Self {
            id,
            input: schemars::schema_for!(I),
            output: schemars::schema_for!(O),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_names() {
        assert_eq!(descriptor_var("gmail"), "ROOST_INTEGRATION_GMAIL");
        assert_eq!(descriptor_var("my-api.v2"), "ROOST_INTEGRATION_MY_API_V2");
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn statuses_become_typed_errors() {
        let err = check_status("gmail", response(429, &[("retry-after", "7")], "")).unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        let err = check_status(
            "gmail",
            response(
                401,
                &[],
                r#"{"error":{"code":401,"message":"Invalid Credentials"}}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Unauthorized {
                message: "Invalid Credentials".into()
            }
        );
        assert!(err.to_string().contains("reconnect gmail"));
        let err = check_status("slack", response(503, &[], "upstream down")).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Server { status: 503, .. }));
        let err = check_status("slack", response(403, &[], "")).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Forbidden { .. }));
        let err = check_status("x", response(404, &[], r#"{"message":"nope"}"#)).unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Api {
                status: 404,
                code: None,
                message: "nope".into()
            }
        );
        assert!(check_status("x", response(204, &[], "")).is_ok());
    }
}
