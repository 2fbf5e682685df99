//! `roost run --state FILE`: a script's state in a JSON file, so a script
//! can be tried locally across runs with the same rules as on a server.
//! The run reads the file's entries with its own writes on top; its writes
//! are saved to the file only if it exits successfully, and the file is
//! replaced whole (written beside it, then renamed), so a run that fails
//! or is killed leaves it as it was.
//!
//! The file holds what `GET /v1/scripts/{id}/state` answers:
//! `{"entries": [{"key": "…", "value": …, "expiresAt": null}]}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::execute::run_state::CommittedState;
use crate::store::{StateEntry, StateWrites, canonical_json as canonical, now_millis};

#[derive(Serialize, Deserialize)]
struct StateFile {
    entries: Vec<FileEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileEntry {
    key: String,
    value: Value,
    #[serde(default)]
    expires_at: Option<i64>,
}

/// The live entries of a state file, by key.
#[derive(Clone, Default)]
pub(super) struct LocalState {
    entries: BTreeMap<String, StateEntry>,
}

impl LocalState {
    /// The entries of `path`; none if it does not exist yet.
    pub(super) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let file: StateFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a state file ({{\"entries\": [{{\"key\": …, \"value\": …}}]}})",
                path.display()
            )
        })?;
        let now = now_millis();
        let entries = file
            .entries
            .into_iter()
            .filter(|e| e.expires_at.is_none_or(|at| at > now))
            .map(|e| {
                let entry = StateEntry {
                    key: e.key.clone(),
                    value: canonical(&e.value),
                    expires_at: e.expires_at,
                    updated_at: now,
                    run_id: None,
                };
                (e.key, entry)
            })
            .collect();
        Ok(Self { entries })
    }

    /// Writes these entries with `writes` applied to `path`, replacing it.
    pub(super) fn save(mut self, path: &Path, writes: &StateWrites) -> anyhow::Result<()> {
        for change in &writes.changes {
            match &change.value {
                Some(value) => {
                    self.entries.insert(
                        change.key.clone(),
                        StateEntry {
                            key: change.key.clone(),
                            value: value.clone(),
                            expires_at: change.expires_at,
                            updated_at: now_millis(),
                            run_id: None,
                        },
                    );
                }
                None => {
                    self.entries.remove(&change.key);
                }
            }
        }
        let file = StateFile {
            entries: self
                .entries
                .into_values()
                .map(|e| FileEntry {
                    value: serde_json::from_str(&e.value).unwrap_or(Value::Null),
                    key: e.key,
                    expires_at: e.expires_at,
                })
                .collect(),
        };
        let mut text = serde_json::to_string_pretty(&file)?;
        text.push('\n');
        let beside = sibling(path);
        std::fs::write(&beside, text).with_context(|| format!("writing {}", beside.display()))?;
        std::fs::rename(&beside, path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    }
}

/// Where the new file is written before it replaces `path`.
fn sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".writing");
    path.with_file_name(name)
}

#[async_trait]
impl CommittedState for LocalState {
    async fn entries_by_keys(&self, keys: &[&str]) -> Result<Vec<StateEntry>, String> {
        Ok(keys
            .iter()
            .filter_map(|key| self.entries.get(*key).cloned())
            .collect())
    }

    async fn entries(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StateEntry>, String> {
        Ok(self
            .entries
            .values()
            .filter(|e| e.key.starts_with(prefix) && after.is_none_or(|a| e.key.as_str() > a))
            .take(usize::try_from(limit).unwrap_or(0))
            .cloned()
            .collect())
    }
}
