//! `webhooks.subscriptions`: how roost asks a provider to send the
//! deliveries a user's scripts listen for, through two of the
//! integration's own methods (create and delete), so the call carries the
//! user's credential, the rate limit and the retries of every host call.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{SecretSource, WebhookDef};
use crate::registry::{IntegrationDefinition, placeholders};

/// Registering and removing a user's subscriptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionsDef {
    /// One subscription per item of a user's credential (GitHub: per
    /// repository); one for the whole connection without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<EachDef>,
    /// One subscription carries every topic (`{topics}`, GitHub's hook
    /// `events`); otherwise one per topic (`{topic}`, Shopify's).
    #[serde(default)]
    pub together: bool,
    /// The provider writes roost's `.` as this in its topics (Shopify's
    /// `orders/create` is roost's `orders.create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_separator: Option<String>,
    /// The method that creates one, and where its answer holds the id.
    pub create: SubscriptionCall,
    /// The method that deletes one (`{id}` is the created one's id).
    pub delete: SubscriptionCall,
}

/// The items of a credential, each a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EachDef {
    /// The credential holding the comma-separated items.
    pub credential: String,
    /// Splits an item into named parts (`owner/repo` on `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// The placeholder name of each part (or of the whole item).
    pub names: Vec<String>,
}

/// One method call of a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionCall {
    /// The integration's method id.
    pub method: String,
    /// Its input, with `{url}`, `{secret}`, `{topic}` or `{topics}`, `{id}`
    /// and the `each` names as placeholders. A string that is one
    /// placeholder takes the value as it is (`{topics}`: an array).
    pub input: Value,
    /// JSON Pointer of the created subscription's id in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Fills `template`'s placeholders from `vars`.
pub fn render(template: &Value, vars: &BTreeMap<String, Value>) -> Value {
    match template {
        Value::String(text) => {
            if let Some(name) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}'))
                && let Some(value) = vars.get(name)
            {
                return value.clone();
            }
            let mut out = text.clone();
            for (name, value) in vars {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out = out.replace(&format!("{{{name}}}"), &text);
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| render(i, vars)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn template_placeholders(template: &Value, found: &mut BTreeSet<String>) {
    match template {
        Value::String(text) => found.extend(placeholders(text).into_iter().map(str::to_string)),
        Value::Array(items) => items.iter().for_each(|i| template_placeholders(i, found)),
        Value::Object(map) => map.values().for_each(|v| template_placeholders(v, found)),
        _ => {}
    }
}

impl SubscriptionsDef {
    /// The provider's topic for roost event type `event_type` of
    /// `integration`, if it is one of its types.
    pub fn topic(
        &self,
        webhooks: &WebhookDef,
        integration: &str,
        event_type: &str,
    ) -> Option<String> {
        let name = event_type.strip_prefix(integration)?.strip_prefix('.')?;
        if let Some((raw, _)) = webhooks.event_type.map.iter().find(|(_, m)| *m == name) {
            return Some(raw.clone());
        }
        Some(match &self.topic_separator {
            Some(separator) => name.replace('.', separator),
            None => name.to_string(),
        })
    }

    /// The named parts of one `each` item, or `None` if it does not split
    /// into as many parts as there are names.
    pub fn scope_vars(&self, item: &str) -> Option<Vec<(String, String)>> {
        let Some(each) = &self.each else {
            return Some(Vec::new());
        };
        let parts: Vec<&str> = match &each.split {
            Some(separator) => item.split(separator.as_str()).collect(),
            None => vec![item],
        };
        (parts.len() == each.names.len() && parts.iter().all(|p| !p.trim().is_empty())).then(|| {
            each.names
                .iter()
                .zip(parts)
                .map(|(name, part)| (name.clone(), part.trim().to_string()))
                .collect()
        })
    }

    /// Consistency with the definition it is part of: (field under
    /// `webhooks.subscriptions`, reason).
    pub fn validate(
        &self,
        definition: &IntegrationDefinition,
        webhooks: &WebhookDef,
    ) -> Result<(), (String, String)> {
        let fail = |field: &str, reason: String| Err((field.to_string(), reason));
        let credential = |key: &str| definition.credentials.iter().any(|c| c.key == key);
        let mut names: BTreeSet<String> = ["url".to_string()].into();
        if matches!(webhooks.secret, SecretSource::Credential { .. }) {
            names.insert("secret".into());
        }
        names.insert(if self.together { "topics" } else { "topic" }.into());
        if let Some(each) = &self.each {
            if !credential(&each.credential) {
                return fail(
                    "each.credential",
                    format!("`{}` is not one of the credentials", each.credential),
                );
            }
            if each.names.is_empty() || (each.split.is_none() && each.names.len() != 1) {
                return fail(
                    "each.names",
                    "names each part of an item (one name when it is not split)".into(),
                );
            }
            for name in &each.names {
                if !names.insert(name.clone()) {
                    return fail("each.names", format!("`{name}` is already a placeholder"));
                }
            }
        }
        for (field, call, extra) in [
            ("create", &self.create, None),
            ("delete", &self.delete, Some("id")),
        ] {
            if !definition.methods.iter().any(|m| m.id == call.method) {
                return fail(
                    &format!("{field}.method"),
                    format!("`{}` is not one of the methods", call.method),
                );
            }
            let mut used = BTreeSet::new();
            template_placeholders(&call.input, &mut used);
            for name in used {
                if !(names.contains(&name) || extra == Some(name.as_str())) {
                    return fail(
                        &format!("{field}.input"),
                        format!("`{{{name}}}` is not a placeholder here"),
                    );
                }
            }
        }
        match &self.create.id {
            Some(pointer) if pointer.starts_with('/') => Ok(()),
            _ => fail(
                "create.id",
                "the JSON Pointer of the created subscription's id is required".into(),
            ),
        }
    }
}
