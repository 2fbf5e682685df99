//! The shape of an integration definition file and its validation.
//!
//! Follows the integration-definition document (integrationId, name,
//! description, version, methods with JSON-Schema input and output,
//! configSchema, authType, oauth2Config) extended with the credential
//! contract (credential specs naming their env vars), a setup URL template,
//! a docs URL, the hosts the API lives on, and rate-limit hints.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::syntax::{is_env_var, is_identifier, is_object_schema, is_semver};

/// How an integration authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    /// OAuth 2.0 authorization-code flow.
    Oauth2,
    /// A key or token the user pastes.
    Apikey,
    /// Something integration-specific.
    Custom,
    /// Nothing to connect (cron, roost's own messaging).
    None,
}

/// The kind of one stored credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialType {
    /// Obtained through the OAuth flow.
    Oauth2,
    /// An API key.
    ApiKey,
    /// A bearer or access token.
    Token,
    /// `user:password`.
    BasicAuth,
    /// Anything else (a shop domain, an account id…).
    Custom,
}

/// Where the provider expects a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// `header` or `query`.
    #[serde(rename = "in")]
    pub location: PlacementLocation,
    /// Header or query parameter name.
    pub name: String,
    /// Text before the value (`Bearer `).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Header or query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlacementLocation {
    /// An HTTP header.
    Header,
    /// A query parameter.
    Query,
    /// The API's host: calls go to `https://{value}` unless the server sets
    /// a base URL (Shopify's shop domain). The value must match one of the
    /// integration's `outboundHosts`.
    Host,
}

/// One credential an integration needs, and the env var it becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialSpec {
    /// Storage key (`access_token`).
    pub key: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: CredentialType,
    /// For people.
    pub description: String,
    /// Environment variable the value is injected as.
    pub env_var: String,
    /// Whether deploy requires it.
    pub required: bool,
    /// Storage key of the matching refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_key: Option<String>,
    /// Environment variable of the refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_env_var: Option<String>,
    /// OAuth scopes this credential carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Where the provider expects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// OAuth 2.0 endpoints and parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2Config {
    /// Authorization endpoint.
    pub authorization_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// Provider-specific authorization parameters.
    #[serde(default)]
    pub additional_parameters: BTreeMap<String, String>,
}

/// Rate-limit hints for callers of the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    /// Sustained requests per second.
    pub requests_per_second: f64,
    /// Burst size.
    pub burst: u32,
}

/// The provider request a method maps to: the declarative mapping a
/// connector executes, so most integrations need no Rust code.
///
/// Input fields named in the path template fill it; then `query` fields
/// (by default every remaining field of a GET or DELETE) go to the query
/// string; whatever remains is the JSON body of a POST, PUT or PATCH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MethodHttp {
    /// HTTP method.
    pub method: String,
    /// Path template (`/v1/items/{id}`); each `{name}` is a required input field.
    pub path: String,
    /// Input fields sent as query parameters (arrays repeat the parameter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Vec<String>>,
    /// Wraps the JSON body in an object under this key (`{"webhook": …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_key: Option<String>,
    /// Constant fields added to the JSON body (before `bodyKey` wraps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_defaults: Option<serde_json::Map<String, serde_json::Value>>,
    /// Extra request headers; `{config.<key>}` is replaced by the server's
    /// setting of that key (`Notion-Version: {config.notionVersion}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON Pointer of the method's output inside the response (`/order`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<String>,
    /// Wraps the (extracted) response under this key, for APIs that answer a
    /// bare array (`{"issues": […]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_as: Option<String>,
    /// A boolean field that is `false` when the provider refused the call
    /// inside a 2xx answer (Slack's `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok_field: Option<String>,
    /// The field holding the provider's error code when `okField` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_field: Option<String>,
    /// Whether sending the request twice is harmless, so a 500, 502 or 504
    /// may be retried. Defaults to true for GET, PUT and DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
}

impl MethodHttp {
    /// The `{name}` placeholders of the path template, in order.
    pub fn path_params(&self) -> Vec<&str> {
        placeholders(&self.path)
    }

    /// Whether a repeat of the request is harmless.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
            .unwrap_or(matches!(self.method.as_str(), "GET" | "PUT" | "DELETE"))
    }

    /// Whether the method sends a JSON body.
    pub fn has_body(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH")
    }
}

/// `{name}` placeholders in a template.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        found.push(&after[..close]);
        rest = &after[close + 1..];
    }
    found
}

/// Whether a run's script sees an integration's credentials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialDelivery {
    /// As env vars in the sandbox (the Wren model), and for host calls.
    #[default]
    Env,
    /// Only roost holds them: host-mediated calls work, the env vars are
    /// absent and the egress policy leaves the provider's hosts closed.
    Host,
}

/// One method of an integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MethodDef {
    /// Identifier (`send_message`).
    pub id: String,
    /// Human name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of the input.
    pub input_schema: serde_json::Value,
    /// JSON Schema of the output.
    pub output_schema: serde_json::Value,
    /// Provider request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<MethodHttp>,
    /// This method's own rate limit (a separate bucket per user), for
    /// providers that limit methods apart (Slack's tiers); otherwise the
    /// integration's applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
}

/// A whole integration definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntegrationDefinition {
    /// Unique id (`gmail`).
    pub integration_id: String,
    /// Human name.
    pub name: String,
    /// What scripts can do with it.
    pub description: String,
    /// Semantic version of the definition.
    pub version: String,
    /// Authentication.
    pub auth_type: AuthType,
    /// OAuth endpoints, for `oauth2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_config: Option<OAuth2Config>,
    /// Credentials and their env vars.
    pub credentials: Vec<CredentialSpec>,
    /// Env vars plus host calls (default), or host calls only.
    #[serde(default, skip_serializing_if = "is_default")]
    pub credential_delivery: CredentialDelivery,
    /// Setup page URL with `{base_url}` and `{user_id}` placeholders.
    pub setup_url_template: String,
    /// Provider documentation.
    pub docs_url: String,
    /// Hosts the API lives on (egress allowlist of scripts that use it).
    pub outbound_hosts: Vec<String>,
    /// Rate-limit hints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
    /// JSON Schema of the integration's configuration.
    pub config_schema: serde_json::Value,
    /// Methods.
    pub methods: Vec<MethodDef>,
    /// How the provider's webhook deliveries are verified and read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<super::WebhookDef>,
}

/// Why a definition was refused: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionProblem {
    /// JSON path of the field (`credentials[0].envVar`).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl IntegrationDefinition {
    /// Checks everything serde cannot: identifiers, versions, the
    /// consistency of auth type, credentials and OAuth config, schemas.
    pub fn validate(&self) -> Result<(), DefinitionProblem> {
        let problem = |field: &str, reason: String| {
            Err(DefinitionProblem {
                field: field.into(),
                reason,
            })
        };
        if !is_identifier(&self.integration_id) {
            return problem("integrationId", "must match [a-z][a-z0-9_-]*".into());
        }
        if !is_semver(&self.version) {
            return problem(
                "version",
                format!("`{}` is not a semantic version (x.y.z)", self.version),
            );
        }
        for (field, value) in [("name", &self.name), ("description", &self.description)] {
            if value.trim().is_empty() {
                return problem(field, "must not be empty".into());
            }
        }
        match (self.auth_type, &self.oauth2_config) {
            (AuthType::Oauth2, None) => {
                return problem("oauth2Config", "required when authType is oauth2".into());
            }
            (AuthType::Oauth2, Some(oauth)) => {
                for (field, url) in [
                    ("oauth2Config.authorizationUrl", &oauth.authorization_url),
                    ("oauth2Config.tokenUrl", &oauth.token_url),
                ] {
                    if !url.starts_with("https://") {
                        return problem(field, format!("`{url}` must be an https URL"));
                    }
                }
            }
            (_, Some(_)) => {
                return problem(
                    "oauth2Config",
                    "only allowed when authType is oauth2".into(),
                );
            }
            _ => {}
        }
        if self.auth_type == AuthType::None {
            if !self.credentials.is_empty() {
                return problem("credentials", "must be empty when authType is none".into());
            }
        } else {
            if self.credentials.is_empty() {
                return problem(
                    "credentials",
                    "an integration with auth needs at least one credential".into(),
                );
            }
            if !self.setup_url_template.contains("{user_id}") {
                return problem("setupUrlTemplate", "must contain {user_id}".into());
            }
        }
        let mut keys = BTreeSet::new();
        for (i, spec) in self.credentials.iter().enumerate() {
            let at = |name: &str| format!("credentials[{i}].{name}");
            if !is_identifier(&spec.key) || !keys.insert(spec.key.as_str()) {
                return problem(
                    &at("key"),
                    format!("`{}` must be a unique lower-case identifier", spec.key),
                );
            }
            if !is_env_var(&spec.env_var) {
                return problem(
                    &at("envVar"),
                    format!(
                        "`{}` must match [A-Z][A-Z0-9_]* and not start with ROOST_",
                        spec.env_var
                    ),
                );
            }
            match (&spec.refresh_key, &spec.refresh_env_var) {
                (Some(_), None) | (None, Some(_)) => {
                    return problem(
                        &at("refreshKey"),
                        "refreshKey and refreshEnvVar go together".into(),
                    );
                }
                (Some(_), Some(env)) if !is_env_var(env) => {
                    return problem(
                        &at("refreshEnvVar"),
                        format!("`{env}` must match [A-Z][A-Z0-9_]* and not start with ROOST_"),
                    );
                }
                _ => {}
            }
            if spec
                .placement
                .as_ref()
                .is_some_and(|p| p.location == PlacementLocation::Host)
                && self.outbound_hosts.is_empty()
            {
                return problem(
                    &at("placement"),
                    "a host placement needs outboundHosts the host must match".into(),
                );
            }
            if spec.kind == CredentialType::Oauth2 && self.auth_type != AuthType::Oauth2 {
                return problem(
                    &at("type"),
                    "oauth2 credentials need authType oauth2".into(),
                );
            }
        }
        for (i, host) in self.outbound_hosts.iter().enumerate() {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if bare.is_empty()
                || !bare.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
            {
                return problem(
                    &format!("outboundHosts[{i}]"),
                    format!("`{host}` is not a host name"),
                );
            }
        }
        let limits = std::iter::once(("rateLimits".to_string(), &self.rate_limits)).chain(
            self.methods
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("methods[{i}].rateLimits"), &m.rate_limits)),
        );
        for (field, limits) in limits {
            if let Some(limits) = limits
                && !(limits.requests_per_second > 0.0
                    && limits.requests_per_second.is_finite()
                    && limits.burst >= 1)
            {
                return problem(
                    &field,
                    "requestsPerSecond must be above 0 and burst at least 1".into(),
                );
            }
        }
        if !is_object_schema(&self.config_schema) {
            return problem(
                "configSchema",
                "must be a JSON Schema object with \"type\": \"object\"".into(),
            );
        }
        let mut ids = BTreeSet::new();
        for (i, method) in self.methods.iter().enumerate() {
            if !is_identifier(&method.id) || !ids.insert(method.id.as_str()) {
                return problem(
                    &format!("methods[{i}].id"),
                    format!("`{}` must be a unique identifier", method.id),
                );
            }
            for (name, schema) in [
                ("inputSchema", &method.input_schema),
                ("outputSchema", &method.output_schema),
            ] {
                if !is_object_schema(schema) {
                    return problem(
                        &format!("methods[{i}].{name}"),
                        "must be a JSON Schema object with \"type\": \"object\"".into(),
                    );
                }
                if let Err(reason) = jsonschema::validator_for(schema) {
                    return problem(
                        &format!("methods[{i}].{name}"),
                        format!("is not a valid JSON Schema: {reason}"),
                    );
                }
            }
            if let Some(http) = &method.http
                && let Err((field, reason)) = self.check_mapping(method, http)
            {
                return problem(&format!("methods[{i}].http.{field}"), reason);
            }
        }
        if let Some(webhooks) = &self.webhooks {
            webhooks
                .validate(&self.integration_id)
                .or_else(|(field, reason)| problem(&format!("webhooks.{field}"), reason))?;
            if let super::SecretSource::Credential { key } = &webhooks.secret
                && !self.credentials.iter().any(|spec| &spec.key == key)
            {
                return problem(
                    "webhooks.secret.key",
                    format!("`{key}` is not one of the credentials"),
                );
            }
            if let Some(subscriptions) = &webhooks.subscriptions {
                subscriptions
                    .validate(self, webhooks)
                    .or_else(|(field, reason)| {
                        problem(&format!("webhooks.subscriptions.{field}"), reason)
                    })?;
            }
        }
        Ok(())
    }

    /// A method's mapping refers only to what exists: path placeholders are
    /// required input fields, query fields are input fields, header
    /// templates name settings of the configSchema.
    fn check_mapping(&self, method: &MethodDef, http: &MethodHttp) -> Result<(), (String, String)> {
        let fail = |field: &str, reason: String| Err((field.to_string(), reason));
        if !matches!(
            http.method.as_str(),
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE"
        ) {
            return fail(
                "method",
                format!(
                    "`{}` is not one of GET, POST, PUT, PATCH, DELETE",
                    http.method
                ),
            );
        }
        if !http.path.starts_with('/') {
            return fail("path", format!("`{}` must start with /", http.path));
        }
        let properties = method.input_schema["properties"].as_object();
        let has_property = |name: &str| properties.is_some_and(|p| p.contains_key(name));
        let required: BTreeSet<&str> = method.input_schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        for name in http.path_params() {
            if !has_property(name) || !required.contains(name) {
                return fail(
                    "path",
                    format!("`{{{name}}}` must be a required property of the inputSchema"),
                );
            }
        }
        for name in http.query.iter().flatten() {
            if !has_property(name) {
                return fail(
                    "query",
                    format!("`{name}` is not a property of the inputSchema"),
                );
            }
        }
        if (http.body_key.is_some() || http.body_defaults.is_some()) && !http.has_body() {
            return fail("bodyKey", format!("a {} request has no body", http.method));
        }
        if let Some(pointer) = &http.extract
            && !(pointer.is_empty() || pointer.starts_with('/'))
        {
            return fail("extract", format!("`{pointer}` is not a JSON Pointer"));
        }
        if http.error_field.is_some() && http.ok_field.is_none() {
            return fail("errorField", "goes with okField".into());
        }
        let settings = self.config_schema["properties"].as_object();
        for (name, template) in &http.headers {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return fail("headers", format!("`{name}` is not a header name"));
            }
            for placeholder in placeholders(template) {
                let known = placeholder
                    .strip_prefix("config.")
                    .is_some_and(|key| settings.is_some_and(|p| p.contains_key(key)));
                if !known {
                    return fail(
                        &format!("headers.{name}"),
                        format!(
                            "`{{{placeholder}}}` is not `{{config.<a configSchema property>}}`"
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// The credentials deploy insists on.
    pub fn required_keys(&self) -> impl Iterator<Item = &CredentialSpec> {
        self.credentials.iter().filter(|spec| spec.required)
    }

    /// The setup URL for a user.
    pub fn setup_url(&self, base_url: &str, user_id: &str) -> String {
        self.setup_url_template
            .replace("{base_url}", base_url.trim_end_matches('/'))
            .replace("{user_id}", user_id)
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}
