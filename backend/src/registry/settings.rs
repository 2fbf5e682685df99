//! The server's own settings per integration (`[integration_config.gmail]
//! baseUrl = "…"` in roost.toml), checked against each definition's
//! `configSchema` at startup, and what runs take from them: the
//! `ROOST_INTEGRATION_<ID>` descriptor the SDK reads (base URL, where the
//! credential goes) and the hosts the egress policy opens.
//!
//! These are operator settings, not user input: a base URL that points at a
//! loopback or private address (a test stand-in, a proxy on the LAN) is
//! allowed through the egress policy because the operator wrote it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value, json};

use super::{
    CredentialDelivery, IntegrationDefinition, PlacementLocation, Registry, RegistryError,
};

/// Per-integration settings as written in the config, by integration id.
pub type IntegrationConfig = BTreeMap<String, Map<String, Value>>;

/// What a run of a script declaring one integration gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunProfile {
    /// Name of the descriptor variable (`ROOST_INTEGRATION_GMAIL`).
    pub descriptor_var: String,
    /// Its JSON value.
    pub descriptor: String,
    /// Hosts the egress policy opens for it.
    pub hosts: Vec<String>,
    /// Loopback or private addresses the operator's base URL points at.
    pub restricted_ips: Vec<IpAddr>,
    /// The effective settings (schema defaults with the operator's values
    /// on top), for host-side calls.
    pub settings: Map<String, Value>,
}

/// Run profiles of every integration in the registry.
#[derive(Debug, Default)]
pub struct RunProfiles {
    by_id: HashMap<String, RunProfile>,
}

impl RunProfiles {
    /// Checks `config` against the registry's definitions and derives every
    /// integration's profile.
    pub fn build(registry: &Registry, config: &IntegrationConfig) -> Result<Self, RegistryError> {
        if let Some(unknown) = config.keys().find(|id| registry.get(id).is_none()) {
            return Err(invalid(
                unknown,
                "",
                format!("no such integration; known: {}", registry.ids().join(", ")),
            ));
        }
        let mut by_id = HashMap::new();
        for definition in registry.all() {
            let id = &definition.integration_id;
            let empty = Map::new();
            let settings = effective(definition, config.get(id).unwrap_or(&empty))?;
            by_id.insert(id.clone(), profile(definition, &settings)?);
        }
        Ok(Self { by_id })
    }

    /// The profile of integration `id`.
    pub fn get(&self, id: &str) -> Option<&RunProfile> {
        self.by_id.get(id)
    }
}

/// `ROOST_INTEGRATION_<ID>`: the id upper-cased, other characters as `_`
/// (the SDK derives the same name).
pub fn descriptor_var(id: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("ROOST_INTEGRATION_{id}")
}

fn invalid(id: &str, key: &str, reason: String) -> RegistryError {
    let field = if key.is_empty() {
        format!("integration_config.{id}")
    } else {
        format!("integration_config.{id}.{key}")
    };
    RegistryError::Invalid {
        file: "server config".into(),
        field,
        reason,
    }
}

/// The schema's defaults with the operator's values on top, each value
/// checked against its property.
fn effective(
    definition: &IntegrationDefinition,
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, RegistryError> {
    let id = &definition.integration_id;
    let schema = &definition.config_schema;
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let closed = schema["additionalProperties"] == Value::Bool(false);
    let mut settings: Map<String, Value> = properties
        .iter()
        .filter_map(|(key, property)| Some((key.clone(), property.get("default")?.clone())))
        .collect();
    for (key, value) in given {
        match properties.get(key) {
            Some(property) => check_value(id, key, property, value)?,
            None if closed => {
                let known: Vec<&String> = properties.keys().collect();
                return Err(invalid(
                    id,
                    key,
                    if known.is_empty() {
                        "this integration takes no settings".to_string()
                    } else {
                        format!(
                            "not a setting of this integration; it has: {}",
                            known
                                .iter()
                                .map(|k| k.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    },
                ));
            }
            None => {}
        }
        settings.insert(key.clone(), value.clone());
    }
    Ok(settings)
}

fn check_value(id: &str, key: &str, property: &Value, value: &Value) -> Result<(), RegistryError> {
    let expected = property["type"].as_str().unwrap_or("any");
    let fits = match expected {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    };
    if !fits {
        return Err(invalid(
            id,
            key,
            format!("expected a {expected}, got {value}"),
        ));
    }
    if property["format"] == "uri"
        && let Some(text) = value.as_str()
    {
        http_url(text).map_err(|reason| invalid(id, key, reason))?;
    }
    Ok(())
}

/// An absolute http(s) URL with a host.
fn http_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{text}` is not an absolute http(s) URL"));
    }
    Ok(url)
}

fn profile(
    definition: &IntegrationDefinition,
    settings: &Map<String, Value>,
) -> Result<RunProfile, RegistryError> {
    let id = &definition.integration_id;
    if definition.credential_delivery == CredentialDelivery::Host {
        // Only roost talks to the provider: no hosts for the sandbox, and a
        // descriptor that tells the SDK why its own client cannot work.
        if let Some(base) = settings.get("baseUrl").and_then(Value::as_str) {
            http_url(base).map_err(|reason| invalid(id, "baseUrl", reason))?;
        }
        return Ok(RunProfile {
            descriptor_var: descriptor_var(id),
            descriptor: json!({ "hostOnly": true }).to_string(),
            hosts: Vec::new(),
            restricted_ips: Vec::new(),
            settings: settings.clone(),
        });
    }
    let mut hosts = definition.outbound_hosts.clone();
    let mut restricted_ips = Vec::new();
    let mut descriptor = Map::new();
    if let Some(base) = settings.get("baseUrl").and_then(Value::as_str) {
        let url = http_url(base).map_err(|reason| invalid(id, "baseUrl", reason))?;
        let host = url
            .host_str()
            .expect("checked above")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if let Ok(ip) = host.parse::<IpAddr>() {
            restricted_ips.push(ip);
        } else if host == "localhost" {
            restricted_ips.extend([
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]);
        }
        // Only the origin the operator named: host and port.
        let port = url
            .port_or_known_default()
            .expect("http(s) has a default port");
        hosts.push(if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        });
        descriptor.insert(
            "baseUrl".into(),
            Value::String(base.trim_end_matches('/').to_string()),
        );
    }
    // The credential a client attaches to its requests: the first one
    // with a placement (API keys and access tokens have one; refresh
    // tokens and app secrets do not).
    if let Some(spec) = definition
        .credentials
        .iter()
        .find(|s| s.placement.is_some())
    {
        let placement = spec.placement.as_ref().expect("found with a placement");
        descriptor.insert(
            "auth".into(),
            json!({
                "envVar": spec.env_var,
                "in": match placement.location {
                    PlacementLocation::Header => "header",
                    PlacementLocation::Query => "query",
                    PlacementLocation::Host => "host",
                },
                "name": placement.name,
                "prefix": placement.prefix,
            }),
        );
    }
    Ok(RunProfile {
        descriptor_var: descriptor_var(id),
        descriptor: Value::Object(descriptor).to_string(),
        hosts,
        restricted_ips,
        settings: settings.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str, settings: Value) -> IntegrationConfig {
        let mut config = IntegrationConfig::new();
        config.insert(id.into(), settings.as_object().unwrap().clone());
        config
    }

    #[test]
    fn defaults_and_overrides_become_descriptors() {
        let registry = Registry::load(None).unwrap();
        let profiles = RunProfiles::build(&registry, &IntegrationConfig::new()).unwrap();
        let gmail = profiles.get("gmail").unwrap();
        assert_eq!(gmail.descriptor_var, "ROOST_INTEGRATION_GMAIL");
        let descriptor: Value = serde_json::from_str(&gmail.descriptor).unwrap();
        assert_eq!(descriptor["baseUrl"], "https://gmail.googleapis.com");
        assert_eq!(descriptor["auth"]["envVar"], "GMAIL_ACCESS_TOKEN");
        assert_eq!(descriptor["auth"]["prefix"], "Bearer ");
        assert!(gmail.restricted_ips.is_empty());

        let local = config("slack", json!({ "baseUrl": "http://127.0.0.1:9999/" }));
        let profiles = RunProfiles::build(&registry, &local).unwrap();
        let slack = profiles.get("slack").unwrap();
        let descriptor: Value = serde_json::from_str(&slack.descriptor).unwrap();
        assert_eq!(descriptor["baseUrl"], "http://127.0.0.1:9999");
        assert!(slack.hosts.contains(&"127.0.0.1:9999".to_string()));
        assert!(slack.hosts.contains(&"slack.com".to_string()));
        assert_eq!(slack.restricted_ips, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        let messaging = profiles.get("messaging").unwrap();
        assert_eq!(messaging.descriptor, "{}");
    }

    #[test]
    fn bad_settings_are_refused_with_the_field() {
        let registry = Registry::load(None).unwrap();
        for (config, needle) in [
            (config("nope", json!({})), "integration_config.nope"),
            (
                config("gmail", json!({ "baseUrl": 5 })),
                "integration_config.gmail.baseUrl",
            ),
            (config("gmail", json!({ "baseUrl": "ftp://x" })), "http(s)"),
            (
                config("gmail", json!({ "colour": "red" })),
                "it has: baseUrl",
            ),
            (
                config("messaging", json!({ "baseUrl": "http://x" })),
                "takes no settings",
            ),
        ] {
            let err = RunProfiles::build(&registry, &config)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
    }
}
