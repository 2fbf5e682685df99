//! Connectors: every integration's methods made executable by the host, in
//! the connector contract's shape. A connector has the definition's `auth`,
//! its `operations` (each method with name, description, input and output
//! schemas and the integration's rate-limit hints) and `execute`, which
//! checks the input, builds the provider request from the method's
//! declarative mapping (or from Rust code registered for it), adds the
//! user's credential on the host, sends it through the shared transport,
//! and checks the output.
//!
//! A script reaches this through `http://roost.internal/v1/integrations/
//! {id}/{method}` (the SDK's `integrations::call`), so the credential never
//! enters the sandbox.

mod code;
mod credentials;
mod error;
mod mapping;
mod outgoing;
mod rate_limit;
mod schema;
mod transport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

pub use credentials::{CredentialSource, HostCredential};
pub use error::CallError;
pub use mapping::{Declarative, OperationCode, ProviderRequest, ProviderResponse};
pub use schema::SchemaViolation;
pub use transport::TransportPolicy;

use crate::registry::{IntegrationDefinition, MethodDef, RateLimits, Registry, RunProfiles};
use outgoing::{outgoing, provider_error};
use schema::Schema;
use transport::{RateKey, Transport};

/// One method of a connector.
pub struct Operation {
    /// The definition's method: id, name, description, schemas, mapping.
    pub method: MethodDef,
    /// How it executes: `mapping`, `code`, or `none`.
    pub executor: &'static str,
    input: Schema,
    output: Schema,
    code: Option<Arc<dyn OperationCode>>,
}

/// One integration's connector.
pub struct Connector {
    definition: Arc<IntegrationDefinition>,
    settings: Map<String, Value>,
    operations: BTreeMap<String, Operation>,
}

impl Connector {
    /// The limits a method's calls are spaced by: its own, or the
    /// integration's.
    fn rate_limits<'a>(&'a self, method: &'a MethodDef) -> Option<&'a RateLimits> {
        method
            .rate_limits
            .as_ref()
            .or(self.definition.rate_limits.as_ref())
    }
}

/// The operations facet, as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationInfo<'a> {
    /// Method id.
    pub id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// What it does.
    pub description: &'a str,
    /// Input schema.
    pub input_schema: &'a Value,
    /// Output schema.
    pub output_schema: &'a Value,
    /// Its rate-limit hints (its own, or the integration's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<&'a RateLimits>,
    /// `mapping`, `code` or `none` (not callable from the host).
    pub executor: &'a str,
}

/// A call as the guest asked for it.
pub struct CallRequest<'a> {
    /// Whose run.
    pub user_id: &'a str,
    /// Integrations the script declared.
    pub declared: &'a [String],
    /// Integration id.
    pub integration: &'a str,
    /// Method id.
    pub method: &'a str,
    /// The input as the guest sent it (JSON).
    pub input: &'a [u8],
}

/// How a call went, for the guest and for the run's record.
pub struct CallReport {
    /// The method's output, or why there is none.
    pub result: Result<Value, CallError>,
    /// Requests sent to the provider (0 when refused before sending).
    pub attempts: u32,
    /// Whether a 401 led to a token refresh.
    pub refreshed: bool,
    /// The provider's last HTTP status.
    pub http_status: Option<u16>,
    /// Wall time of the whole call.
    pub duration: Duration,
    /// Part of it spent waiting for the rate limit.
    pub throttled: Duration,
}

/// What a call names, found and checked.
struct Resolved<'a> {
    connector: &'a Connector,
    operation: &'a Operation,
    code: &'a Arc<dyn OperationCode>,
    input: Value,
}

/// Every connector of the registry, with the transport they share.
pub struct Connectors {
    by_id: BTreeMap<String, Connector>,
    transport: Transport,
}

impl Connectors {
    /// Connectors for every definition in `registry`, with the server's
    /// integration settings from `profiles`, and Rust code for the methods
    /// that need it.
    pub fn new(
        registry: &Registry,
        profiles: &RunProfiles,
        policy: TransportPolicy,
    ) -> Result<Self, String> {
        let code = code::built_in();
        let mut by_id = BTreeMap::new();
        for definition in registry.all() {
            let id = &definition.integration_id;
            let mut operations = BTreeMap::new();
            for method in &definition.methods {
                let registered = code.get(&(id.as_str(), method.id.as_str())).cloned();
                let (executor, code): (&'static str, Option<Arc<dyn OperationCode>>) =
                    match (registered, &method.http) {
                        (Some(code), _) => ("code", Some(code)),
                        (None, Some(http)) => {
                            ("mapping", Some(Arc::new(Declarative::new(http.clone()))))
                        }
                        (None, None) => ("none", None),
                    };
                let compile = |schema: &Value| {
                    Schema::compile(schema).map_err(|e| format!("{id}.{}: {e}", method.id))
                };
                operations.insert(
                    method.id.clone(),
                    Operation {
                        input: compile(&method.input_schema)?,
                        output: compile(&method.output_schema)?,
                        method: method.clone(),
                        executor,
                        code,
                    },
                );
            }
            let settings = profiles
                .get(id)
                .map(|p| p.settings.clone())
                .unwrap_or_default();
            by_id.insert(
                id.clone(),
                Connector {
                    definition: definition.clone(),
                    settings,
                    operations,
                },
            );
        }
        Ok(Self {
            by_id,
            transport: Transport::new(policy),
        })
    }

    /// The operations of integration `id`.
    pub fn operations(&self, id: &str) -> Option<Vec<OperationInfo<'_>>> {
        let connector = self.by_id.get(id)?;
        Some(
            connector
                .operations
                .values()
                .map(|op| OperationInfo {
                    id: &op.method.id,
                    name: &op.method.name,
                    description: &op.method.description,
                    input_schema: &op.method.input_schema,
                    output_schema: &op.method.output_schema,
                    rate_limits: connector.rate_limits(&op.method),
                    executor: op.executor,
                })
                .collect(),
        )
    }

    /// The connector, operation and code a call names, and its input
    /// checked against the inputSchema: everything refused before a request
    /// is built.
    fn resolve(&self, request: &CallRequest<'_>) -> Result<Resolved<'_>, CallError> {
        let id = request.integration;
        let connector = self
            .by_id
            .get(id)
            .ok_or_else(|| CallError::UnknownIntegration(id.to_string()))?;
        if !request.declared.iter().any(|d| d == id) {
            return Err(CallError::NotDeclared(id.to_string()));
        }
        let operation =
            connector
                .operations
                .get(request.method)
                .ok_or_else(|| CallError::UnknownMethod {
                    integration: id.to_string(),
                    method: request.method.to_string(),
                    known: connector
                        .operations
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
        let code = operation
            .code
            .as_ref()
            .ok_or_else(|| CallError::NotExecutable {
                integration: id.to_string(),
                method: request.method.to_string(),
            })?;
        let input: Value = serde_json::from_slice(request.input).map_err(|e| {
            CallError::InvalidInput(SchemaViolation {
                field: String::new(),
                reason: format!("the input is not JSON: {e}"),
            })
        })?;
        operation
            .input
            .check(&input, true)
            .map_err(CallError::InvalidInput)?;
        Ok(Resolved {
            connector,
            operation,
            code,
            input,
        })
    }

    /// Executes one call and reports how it went. Never panics on guest
    /// input; every refusal is a [`CallError`].
    pub async fn call(
        &self,
        request: &CallRequest<'_>,
        credentials: &dyn CredentialSource,
    ) -> CallReport {
        let started = Instant::now();
        let mut report = CallReport {
            result: Ok(Value::Null),
            attempts: 0,
            refreshed: false,
            http_status: None,
            duration: Duration::ZERO,
            throttled: Duration::ZERO,
        };
        report.result = self.execute(request, credentials, &mut report).await;
        report.duration = started.elapsed();
        report
    }

    async fn execute(
        &self,
        request: &CallRequest<'_>,
        credentials: &dyn CredentialSource,
        report: &mut CallReport,
    ) -> Result<Value, CallError> {
        let Resolved {
            connector,
            operation,
            code,
            input,
        } = self.resolve(request)?;
        let id = request.integration;
        let provider_request = code.request(&input, &connector.settings)?;
        let mut credential = credentials
            .credential(request.user_id, &connector.definition)
            .await?;
        let base = match connector.settings.get("baseUrl").and_then(Value::as_str) {
            Some(base) => base.to_string(),
            None => outgoing::host_base(&connector.definition, credential.as_ref())?,
        };
        let base = base.as_str();
        // A method with limits of its own counts in its own bucket.
        let bucket = match &operation.method.rate_limits {
            Some(_) => format!("{id}.{}", operation.method.id),
            None => id.to_string(),
        };
        let rate = RateKey {
            user: request.user_id,
            integration: &bucket,
            limits: connector.rate_limits(&operation.method),
        };
        loop {
            let outgoing = outgoing(base, &provider_request, credential.as_ref())?;
            let sent = self.transport.send(&outgoing, &rate).await;
            report.attempts += sent.attempts;
            report.throttled += sent.throttled;
            let response = sent.result?;
            report.http_status = Some(response.status);
            // One renewal per call: a credential refused again after it
            // stands as the provider's answer.
            if response.status == 401
                && !report.refreshed
                && let Some(rejected) = &credential
            {
                report.refreshed = true;
                let renewed = credentials
                    .credential_refused(request.user_id, &connector.definition, rejected)
                    .await?;
                tracing::info!(
                    integration = id,
                    method = request.method,
                    "the provider refused the credential; renewed it, sending again"
                );
                credential = Some(renewed);
                continue;
            }
            if !(200..300).contains(&response.status) {
                return Err(provider_error(&response));
            }
            let output = code.output(&response)?;
            operation
                .output
                .check(&output, false)
                .map_err(CallError::InvalidOutput)?;
            return Ok(output);
        }
    }
}
