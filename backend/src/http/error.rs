//! The one error type of the HTTP layer: a status, a stable machine-readable
//! code, a message that says what to do, and optional details. Internal
//! failures become a generic 500 and are logged, never echoed.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::credentials::CredentialError;
use crate::deploy::DeployError;
use crate::store::StoreError;

/// An API error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<Value>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 429 with `Retry-After` (whole seconds, at least 1).
    pub fn too_many(
        code: &'static str,
        message: impl Into<String>,
        wait: std::time::Duration,
    ) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, code, message);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        error.retry_after = Some(secs.max(1));
        error.with_details(json!({ "retry_after_secs": secs.max(1) }))
    }

    /// Attaches details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 for a resource of the user's that does not exist.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    fn internal(err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = crate::api::ErrorBody {
            error: crate::api::ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists; retry or pick another"),
            ),
            StoreError::QueueFull { queued } => Self::too_many(
                "queue_full",
                format!(
                    "you have {queued} runs waiting, the most this server queues; retry when some have run"
                ),
                std::time::Duration::from_secs(1),
            ),
            StoreError::PayloadQuotaFull {
                stored,
                incoming,
                limit,
            } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "payload_quota_full",
                format!(
                    "your runs keep {stored} bytes of payload and this would add {incoming}, past the \
                     {limit} bytes this server keeps per user; send smaller payloads (a reference \
                     instead of the data), or retry once old runs pass the retention period"
                ),
            )
            .with_details(json!({ "stored_bytes": stored, "incoming_bytes": incoming, "limit_bytes": limit })),
            other => Self::internal(&other),
        }
    }
}

impl From<crate::scripts::ScriptError> for ApiError {
    fn from(err: crate::scripts::ScriptError) -> Self {
        use crate::scripts::ScriptError;
        match err {
            ScriptError::NotFound(what) => ApiError::not_found(&what),
            ScriptError::InvalidPolicy { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_policy", err.to_string())
            }
            ScriptError::Store(err) => err.into(),
        }
    }
}

impl From<crate::script_state::StateError> for ApiError {
    fn from(err: crate::script_state::StateError) -> Self {
        use crate::script_state::StateError;
        let message = err.to_string();
        match err {
            StateError::NotFound(what) => ApiError::not_found(&what),
            StateError::InvalidKey(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_key", message),
            StateError::InvalidValue(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
            }
            StateError::TooLarge(_) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "value_too_large", message)
            }
            StateError::Quota(_) => {
                Self::new(StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded", message)
            }
            StateError::Store(err) => err.into(),
        }
    }
}

impl From<crate::triggers::EventError> for ApiError {
    fn from(err: crate::triggers::EventError) -> Self {
        use crate::triggers::EventError;
        let message = err.to_string();
        match err {
            EventError::Store(store) => store.into(),
            EventError::TooLarge(_) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
            }
            EventError::Bus(_) => {
                tracing::error!(error = %message, "publishing an event failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "event_bus_unavailable",
                    "the cluster's event stream did not take the event; retry with the same event id",
                )
            }
        }
    }
}

impl From<CredentialError> for ApiError {
    fn from(err: CredentialError) -> Self {
        match err {
            CredentialError::Invalid(message) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_credential", message)
            }
            CredentialError::Store(store) => store.into(),
            other => Self::internal(&other),
        }
    }
}

impl From<DeployError> for ApiError {
    fn from(err: DeployError) -> Self {
        let message = err.to_string();
        match err {
            DeployError::InvalidName(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_name", message)
            }
            DeployError::InvalidWasm(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_wasm", message)
            }
            DeployError::InvalidLimits(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_limits", message)
            }
            DeployError::InvalidRetries(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_retries", message)
            }
            DeployError::Quota(_) => Self::new(StatusCode::FORBIDDEN, "quota_exceeded", message),
            DeployError::ComponentTooLarge(..) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "component_too_large",
                message,
            ),
            DeployError::CompileTimeout(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "compile_timeout", message)
            }
            DeployError::InvalidSchedule(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_schedule", message)
            }
            DeployError::InvalidHttpHandler(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_http_handler", message)
            }
            DeployError::InvalidTool(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_tool", message)
            }
            DeployError::InvalidFlow(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_flow", message)
            }
            DeployError::MissingMetadata => {
                Self::new(StatusCode::BAD_REQUEST, "missing_metadata", message)
            }
            DeployError::MetadataMismatch(_) => {
                Self::new(StatusCode::BAD_REQUEST, "metadata_mismatch", message)
            }
            DeployError::DuplicateIntegration(id) => {
                Self::new(StatusCode::BAD_REQUEST, "duplicate_integration", message)
                    .with_details(json!({ "integration": id }))
            }
            DeployError::UnknownIntegrations { unknown, known } => {
                Self::new(StatusCode::BAD_REQUEST, "unknown_integration", message)
                    .with_details(json!({ "unknown": unknown, "known": known }))
            }
            DeployError::NotConfigured(unconfigured) => Self::new(
                StatusCode::CONFLICT,
                "integration_not_configured",
                format!("{message}; ask the operator, then deploy again"),
            )
            .with_details(json!({ "not_configured": unconfigured })),
            DeployError::MissingCredentials(links) => Self::new(
                StatusCode::CONFLICT,
                "missing_credentials",
                format!("{message}; open each setup_url, then deploy again"),
            )
            .with_details(json!({ "missing": links })),
            DeployError::Store(store) => store.into(),
            DeployError::Credentials(credentials) => credentials.into(),
        }
    }
}
