//! The integration registry: definition files loaded and validated at
//! startup, upserted into `integration_definitions`, cached in memory.

mod definition;
mod docs;
mod settings;
mod syntax;
mod webhooks;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use definition::*;
pub use docs::{render_docs, render_index};
pub use settings::{IntegrationConfig, RunProfile, RunProfiles, descriptor_var};
pub use webhooks::*;

use crate::store::{DefinitionRow, Store, StoreError, now_millis};

/// The definitions roost ships, compiled into the binary.
const BUILT_IN: &[(&str, &str)] = &[
    ("cron.json", include_str!("../../integrations/cron.json")),
    (
        "github.json",
        include_str!("../../integrations/github.json"),
    ),
    ("gmail.json", include_str!("../../integrations/gmail.json")),
    (
        "messaging.json",
        include_str!("../../integrations/messaging.json"),
    ),
    (
        "notion.json",
        include_str!("../../integrations/notion.json"),
    ),
    (
        "openai.json",
        include_str!("../../integrations/openai.json"),
    ),
    (
        "sendgrid.json",
        include_str!("../../integrations/sendgrid.json"),
    ),
    (
        "shopify.json",
        include_str!("../../integrations/shopify.json"),
    ),
    ("slack.json", include_str!("../../integrations/slack.json")),
    (
        "stripe.json",
        include_str!("../../integrations/stripe.json"),
    ),
];

/// Why the registry could not load.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A definition file is invalid.
    #[error("integration definition {file}: field `{field}`: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// The offending field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The definitions directory could not be read.
    #[error("reading integration definitions from {path}: {reason}")]
    Io {
        /// Directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Storing the definitions failed.
    #[error("storing integration definitions: {0}")]
    Store(#[from] StoreError),
}

/// All known integrations, by id.
#[derive(Debug, Default)]
pub struct Registry {
    definitions: BTreeMap<String, Arc<IntegrationDefinition>>,
}

impl Registry {
    /// Loads the built-in definitions plus every `*.json` in `extra_dir`
    /// (which may replace a built-in one of the same id), validated.
    pub fn load(extra_dir: Option<&Path>) -> Result<Self, RegistryError> {
        let mut sources: Vec<(String, String)> = BUILT_IN
            .iter()
            .map(|(name, text)| (format!("built-in {name}"), text.to_string()))
            .collect();
        if let Some(dir) = extra_dir {
            let io = |reason: String| RegistryError::Io {
                path: dir.to_path_buf(),
                reason,
            };
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| io(e.to_string()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| io(format!("{}: {e}", path.display())))?;
                sources.push((path.display().to_string(), text));
            }
        }
        Self::from_sources(sources)
    }

    /// Checks one definition file as startup would: parsed, validated, and
    /// consistent with the built-in definitions (it may replace one of the
    /// same id). Returns the definition.
    pub fn check_file(path: &Path) -> Result<Arc<IntegrationDefinition>, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|e| RegistryError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let file = path.display().to_string();
        let id = parse(&file, &text)?.integration_id;
        let mut sources: Vec<(String, String)> = BUILT_IN
            .iter()
            .map(|(name, text)| (format!("built-in {name}"), text.to_string()))
            .collect();
        sources.push((file, text));
        let registry = Self::from_sources(sources)?;
        Ok(registry.get(&id).expect("just loaded").clone())
    }

    fn from_sources(sources: Vec<(String, String)>) -> Result<Self, RegistryError> {
        let mut registry = Self::default();
        for (file, text) in sources {
            let definition = parse(&file, &text)?;
            registry
                .definitions
                .insert(definition.integration_id.clone(), Arc::new(definition));
        }
        registry.check_env_vars_unique()?;
        Ok(registry)
    }

    fn check_env_vars_unique(&self) -> Result<(), RegistryError> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for definition in self.definitions.values() {
            for spec in &definition.credentials {
                for env in std::iter::once(&spec.env_var).chain(spec.refresh_env_var.as_ref()) {
                    if let Some(other) = seen.insert(env, &definition.integration_id) {
                        return Err(RegistryError::Invalid {
                            file: definition.integration_id.clone(),
                            field: "credentials.envVar".into(),
                            reason: format!(
                                "`{env}` is claimed by both `{other}` and `{}`",
                                definition.integration_id
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Upserts every definition into the store (unique on integration id).
    pub async fn persist(&self, store: &dyn Store) -> Result<(), RegistryError> {
        for definition in self.definitions.values() {
            store
                .upsert_integration_definition(&DefinitionRow {
                    integration_id: definition.integration_id.clone(),
                    version: definition.version.clone(),
                    definition: serde_json::to_string(definition.as_ref())
                        .expect("definitions serialise"),
                    updated_at: now_millis(),
                })
                .await?;
        }
        Ok(())
    }

    /// One definition.
    pub fn get(&self, id: &str) -> Option<&Arc<IntegrationDefinition>> {
        self.definitions.get(id)
    }

    /// All definitions, sorted by id.
    pub fn all(&self) -> impl Iterator<Item = &Arc<IntegrationDefinition>> {
        self.definitions.values()
    }

    /// Known ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.definitions.keys().cloned().collect()
    }

    /// The ids in `wanted` that are not in the registry.
    pub fn unknown<'a>(&self, wanted: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        wanted
            .into_iter()
            .filter(|id| !self.definitions.contains_key(*id))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

pub(crate) fn parse(file: &str, text: &str) -> Result<IntegrationDefinition, RegistryError> {
    let definition: IntegrationDefinition =
        serde_json::from_str(text).map_err(|err| RegistryError::Invalid {
            file: file.to_string(),
            field: "(document)".into(),
            reason: err.to_string(),
        })?;
    definition
        .validate()
        .map_err(|problem| RegistryError::Invalid {
            file: file.to_string(),
            field: problem.field,
            reason: problem.reason,
        })?;
    Ok(definition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_definitions_load() {
        let registry = Registry::load(None).unwrap();
        for id in [
            "gmail",
            "slack",
            "cron",
            "messaging",
            "shopify",
            "sendgrid",
            "openai",
            "notion",
            "github",
            "stripe",
        ] {
            assert!(registry.get(id).is_some(), "{id} missing");
        }
        let gmail = registry.get("gmail").unwrap();
        assert_eq!(gmail.credentials[0].env_var, "GMAIL_ACCESS_TOKEN");
        assert_eq!(
            gmail.credentials[0].refresh_env_var.as_deref(),
            Some("GMAIL_REFRESH_TOKEN")
        );
    }

    #[test]
    fn a_bad_file_names_the_file_the_field_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut bad: serde_json::Value = serde_json::from_str(BUILT_IN[2].1).unwrap();
        bad["integrationId"] = "my-gmail".into();
        bad["credentials"][0]["envVar"] = "lower_case".into();
        std::fs::write(dir.path().join("my-gmail.json"), bad.to_string()).unwrap();
        let err = Registry::load(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("my-gmail.json"), "{err}");
        assert!(err.contains("credentials[0].envVar"), "{err}");
        assert!(err.contains("must match"), "{err}");

        std::fs::write(dir.path().join("my-gmail.json"), "{\"integrationId\": 3}").unwrap();
        let err = Registry::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("my-gmail.json") && err.contains("(document)"),
            "{err}"
        );
    }

    #[test]
    fn env_vars_must_be_unique_across_integrations() {
        let dir = tempfile::tempdir().unwrap();
        let mut copy: serde_json::Value = serde_json::from_str(BUILT_IN[2].1).unwrap();
        copy["integrationId"] = "gmail2".into();
        std::fs::write(dir.path().join("gmail2.json"), copy.to_string()).unwrap();
        let err = Registry::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("GMAIL_ACCESS_TOKEN") && err.contains("claimed by both"),
            "{err}"
        );
    }
}
