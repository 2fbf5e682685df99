//! The typed error of a call to an integration, from a client of its own
//! (`gmail`, `slack`…) or through the host (`integrations`).

use std::fmt;
use std::time::Duration;

use crate::http::HttpError;

/// A failed call to an integration, naming the integration.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationError {
    integration: String,
    kind: ErrorKind,
}

/// What went wrong in an integration call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The credential's env var is not set: the integration is not connected
    /// (or the script runs outside roost).
    MissingCredential {
        /// The variable roost would have set.
        env_var: String,
    },
    /// `ROOST_INTEGRATION_<ID>` is missing or unreadable.
    Config(String),
    /// The call's input cannot be sent as given (nothing was sent).
    InvalidInput(String),
    /// 401: the provider refused the credential.
    Unauthorized {
        /// The provider's explanation.
        message: String,
    },
    /// 403: the credential lacks a permission or scope.
    Forbidden {
        /// The provider's explanation.
        message: String,
    },
    /// 429: too many requests.
    RateLimited {
        /// How long the provider asked to wait (`Retry-After`), when it said.
        retry_after: Option<Duration>,
    },
    /// 5xx: the provider failed.
    Server {
        /// HTTP status.
        status: u16,
        /// The provider's explanation.
        message: String,
    },
    /// Any other refusal: a 4xx, or a provider-level error inside a 200
    /// (Slack's `ok: false`).
    Api {
        /// HTTP status.
        status: u16,
        /// The provider's error code, when it has one (`channel_not_found`).
        code: Option<String>,
        /// The provider's explanation.
        message: String,
    },
    /// No response: refused by roost's egress policy, or a network failure.
    Http(HttpError),
    /// The response did not have the documented shape.
    Decode(String),
    /// The user has not connected the integration, or must reconnect or
    /// replace its credential (the provider refused it and roost could not
    /// renew it); the message has the setup link.
    NotConnected(String),
    /// roost refused a host-mediated call before sending it: the method
    /// does not exist or cannot run on the host, the integration is not
    /// declared or not configured, or the run made too many calls.
    Refused {
        /// roost's error code (`unknown_method`, `integration_not_declared`…).
        code: String,
        /// What to do about it.
        message: String,
    },
}

impl IntegrationError {
    /// An error of `integration`.
    pub fn new(integration: impl Into<String>, kind: ErrorKind) -> Self {
        Self {
            integration: integration.into(),
            kind,
        }
    }

    /// The integration id (`gmail`).
    pub fn integration(&self) -> &str {
        &self.integration
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The wait a 429 asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::RateLimited { retry_after } => retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for IntegrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = &self.integration;
        match &self.kind {
            ErrorKind::MissingCredential { env_var } => write!(
                f,
                "{id}: credential missing: {env_var} is not set (roost sets it once the user \
                 has connected {id}; outside roost, set it yourself)"
            ),
            ErrorKind::Config(why) => write!(f, "{id}: integration settings: {why}"),
            ErrorKind::InvalidInput(why) => write!(f, "{id}: invalid input: {why}"),
            ErrorKind::Unauthorized { message } => write!(
                f,
                "{id}: the credential was refused (401): {message}; reconnect {id}"
            ),
            ErrorKind::Forbidden { message } => write!(
                f,
                "{id}: not permitted (403): {message}; the connection may lack a scope"
            ),
            ErrorKind::RateLimited {
                retry_after: Some(wait),
            } => write!(
                f,
                "{id}: rate limited (429); retry after {} s",
                wait.as_secs()
            ),
            ErrorKind::RateLimited { retry_after: None } => write!(f, "{id}: rate limited (429)"),
            ErrorKind::Server { status, message } => {
                write!(f, "{id}: the provider failed ({status}): {message}")
            }
            ErrorKind::Api {
                status,
                code: Some(code),
                message,
            } => write!(f, "{id}: {code} ({status}): {message}"),
            ErrorKind::Api {
                status,
                code: None,
                message,
            } => write!(f, "{id}: refused ({status}): {message}"),
            ErrorKind::Http(err) => write!(f, "{id}: {err}"),
            ErrorKind::Decode(why) => write!(f, "{id}: unexpected response: {why}"),
            ErrorKind::NotConnected(why) => write!(f, "{id}: not connected: {why}"),
            ErrorKind::Refused { code, message } => write!(f, "{id}: {code}: {message}"),
        }
    }
}

impl std::error::Error for IntegrationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Http(err) => Some(err),
            _ => None,
        }
    }
}
