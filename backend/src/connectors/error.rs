//! What a host-mediated integration call can end in, with the HTTP status
//! and machine-readable code the guest receives.

use super::schema::SchemaViolation;

/// Why a host-mediated call did not return the method's output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The script did not declare the integration.
    #[error(
        "this script does not declare the `{0}` integration; declare it (an init! or integrations::declare! macro) and deploy again"
    )]
    NotDeclared(String),
    /// No such integration in the registry.
    #[error("roost has no integration `{0}`")]
    UnknownIntegration(String),
    /// No such method in the definition.
    #[error("`{integration}` has no method `{method}`; it has: {known}")]
    UnknownMethod {
        /// Integration id.
        integration: String,
        /// Requested method.
        method: String,
        /// Its methods, comma-separated.
        known: String,
    },
    /// The method has neither a mapping nor code on the host.
    #[error(
        "`{integration}.{method}` cannot be called from the host: its definition has no http mapping"
    )]
    NotExecutable {
        /// Integration id.
        integration: String,
        /// Method id.
        method: String,
    },
    /// The input is not JSON or breaks the inputSchema; nothing was sent.
    #[error("invalid input, nothing was sent: {0}")]
    InvalidInput(SchemaViolation),
    /// The server lacks a setting the call needs (a base URL).
    #[error("{0}")]
    NotConfigured(String),
    /// The user has not connected the integration, or must reconnect it.
    #[error("{message}")]
    NotConnected {
        /// What to do, with the setup URL.
        message: String,
    },
    /// The provider refused the call (after any retries).
    #[error("the provider answered {status}: {message}")]
    Provider {
        /// The provider's HTTP status.
        status: u16,
        /// The provider's error code, when it gave one.
        code: Option<String>,
        /// The provider's explanation.
        message: String,
        /// Seconds the provider asked to wait (429).
        retry_after: Option<u64>,
    },
    /// The provider's answer breaks the outputSchema or is not JSON.
    #[error("the provider's answer does not match the method's outputSchema: {0}")]
    InvalidOutput(SchemaViolation),
    /// The provider could not be reached (after any retries), or timed out.
    #[error("the provider could not be reached: {0}")]
    Transport(String),
    /// The answer was larger than roost accepts.
    #[error("the provider's answer is larger than {0} bytes")]
    ResponseTooLarge(usize),
    /// roost failed on its side (storage, a refresh that errored).
    #[error("{0}")]
    Internal(String),
}

impl CallError {
    /// The HTTP status the guest receives. Provider refusals keep the
    /// provider's status, so the SDK's status-based errors apply.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotDeclared(_) => 403,
            Self::UnknownIntegration(_) | Self::UnknownMethod { .. } => 404,
            Self::NotExecutable { .. } => 501,
            Self::InvalidInput(_) => 400,
            Self::NotConfigured(_) | Self::NotConnected { .. } | Self::Internal(_) => 503,
            Self::Provider { status, .. } => *status,
            Self::InvalidOutput(_) | Self::ResponseTooLarge(_) => 502,
            Self::Transport(_) => 504,
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotDeclared(_) => "integration_not_declared",
            Self::UnknownIntegration(_) => "unknown_integration",
            Self::UnknownMethod { .. } => "unknown_method",
            Self::NotExecutable { .. } => "method_not_executable",
            Self::InvalidInput(_) => "invalid_input",
            Self::NotConfigured(_) => "not_configured",
            Self::NotConnected { .. } => "not_connected",
            Self::Provider { .. } => "provider_error",
            Self::InvalidOutput(_) => "invalid_output",
            Self::Transport(_) => "provider_unreachable",
            Self::ResponseTooLarge(_) => "response_too_large",
            Self::Internal(_) => "unavailable",
        }
    }

    /// The failing field, for schema violations.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidInput(v) | Self::InvalidOutput(v) => Some(&v.field),
            _ => None,
        }
    }
}
