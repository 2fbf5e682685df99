//! The credential store: values encrypted per (user, integration, key),
//! turned into env vars for runs, never shown back.

pub(crate) mod cipher;
mod keys;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

pub use keys::MasterKeys;

use crate::registry::{CredentialType, IntegrationDefinition, Registry};
use crate::store::{LinkUse, LinkWrite, Store, StoreError};
use cipher::Slot;

/// Largest credential value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;
/// Shortest API key, token or password accepted: the run-output masker
/// leaves shorter values alone (see `runs/masking.rs`).
pub const MIN_SECRET_BYTES: usize = 6;

/// Errors of the credential store. None of them carries a value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The master key could not be loaded or saved.
    #[error("master key: {0}")]
    KeySource(String),
    /// A stored value does not decrypt (tampered, moved, or unknown key).
    #[error(
        "the stored `{key}` credential of `{integration}` cannot be decrypted; reconnect the integration"
    )]
    Undecryptable {
        /// Integration.
        integration: String,
        /// Credential key.
        key: String,
    },
    /// The submitted credential does not fit the integration's spec.
    #[error("{0}")]
    Invalid(String),
    /// Required credentials are missing.
    #[error("missing credentials for: {}", .0.join(", "))]
    Missing(Vec<String>),
    /// The setup link was used already (or concurrently): nothing stored.
    #[error(
        "a credential was already stored through this setup link; deploy again for a fresh one"
    )]
    LinkSpent,
    /// The integration was connected again after the link was issued.
    #[error(
        "the integration was connected again after this setup link was made; deploy again for a fresh one"
    )]
    LinkSuperseded,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `GET /v1/credentials` shows: which keys are connected, never values.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedIntegration {
    /// Integration id.
    pub integration: String,
    /// Stored credential keys.
    pub keys: Vec<String>,
    /// Whether it still works.
    pub status: crate::store::CredentialStatus,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// Encrypts, stores and hands out credentials.
#[derive(Clone)]
pub struct CredentialService {
    store: Arc<dyn Store>,
    keys: Arc<MasterKeys>,
    nudge: crate::subscriptions::Nudge,
}

impl CredentialService {
    /// A service over `store` with `keys`.
    pub fn new(store: Arc<dyn Store>, keys: MasterKeys) -> Self {
        Self {
            store,
            keys: Arc::new(keys),
            nudge: Default::default(),
        }
    }

    /// Tells `nudge` when a user's connections change (webhook
    /// subscriptions need the connection).
    pub fn with_nudge(mut self, nudge: crate::subscriptions::Nudge) -> Self {
        self.nudge = nudge;
        self
    }

    /// A user's connection changed outside [`Self::put`] (the OAuth flow).
    pub fn changed(&self, user_id: &str) {
        self.nudge.user(user_id);
    }

    /// The master keys (for sealing OAuth tokens and deriving secrets).
    pub fn keys(&self) -> &Arc<MasterKeys> {
        &self.keys
    }

    /// Whether a credential was already stored through setup link `link_id`.
    pub async fn link_spent(&self, link_id: &str) -> Result<bool, CredentialError> {
        Ok(self.store.setup_link_spent(link_id).await?)
    }

    /// The store the credentials live in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Stores user-provided values (API keys, tokens, basic auth) for an
    /// integration, replacing earlier ones, in one transaction.
    pub async fn put(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        values: &BTreeMap<String, String>,
        through: Option<&LinkUse>,
    ) -> Result<(), CredentialError> {
        let invalid = |msg: String| Err(CredentialError::Invalid(msg));
        if values.is_empty() {
            return invalid("no credential values given".into());
        }
        let mut rows = Vec::new();
        for (key, value) in values {
            let Some(spec) = definition.credentials.iter().find(|spec| spec.key == *key) else {
                let known: Vec<&str> = definition
                    .credentials
                    .iter()
                    .map(|s| s.key.as_str())
                    .collect();
                return invalid(format!(
                    "`{key}` is not a credential of `{}`; expected one of: {}",
                    definition.integration_id,
                    known.join(", ")
                ));
            };
            if spec.kind == CredentialType::Oauth2 {
                return invalid(format!(
                    "`{key}` of `{}` comes from the OAuth flow; connect it through the setup URL",
                    definition.integration_id
                ));
            }
            if value.trim().is_empty() || value.len() > MAX_VALUE_BYTES || value.contains('\0') {
                return invalid(format!(
                    "`{key}` must be non-empty text of at most {MAX_VALUE_BYTES} bytes"
                ));
            }
            // Run output is masked by exact value, and a value this short
            // cannot be told apart from ordinary text: it would be printed.
            let secret = matches!(
                spec.kind,
                CredentialType::ApiKey | CredentialType::Token | CredentialType::BasicAuth
            );
            if secret && value.len() < MIN_SECRET_BYTES {
                return invalid(format!(
                    "`{key}` is shorter than {MIN_SECRET_BYTES} bytes, too short for roost to keep \
                     out of run output; store the full value"
                ));
            }
            let placement = spec
                .placement
                .as_ref()
                .map(|p| serde_json::to_string(p).expect("placement serialises"));
            let slot = Slot {
                user_id,
                integration_id: &definition.integration_id,
                cred_key: key,
            };
            rows.push(cipher::seal(&self.keys, &slot, value, placement));
        }
        let stored: BTreeSet<String> = self
            .store
            .credentials(user_id, Some(&definition.integration_id))
            .await?
            .into_iter()
            .map(|r| r.cred_key)
            .collect();
        let missing: Vec<&str> = definition
            .required_keys()
            .filter(|spec| spec.kind != CredentialType::Oauth2)
            .map(|spec| spec.key.as_str())
            .filter(|key| !values.contains_key(*key) && !stored.contains(*key))
            .collect();
        if !missing.is_empty() {
            return invalid(format!(
                "`{}` also needs: {}",
                definition.integration_id,
                missing.join(", ")
            ));
        }
        match through {
            None => self.store.put_credentials(&rows).await?,
            Some(link) => match self.store.put_credentials_through_link(&rows, link).await? {
                LinkWrite::Stored => {}
                LinkWrite::Spent => return Err(CredentialError::LinkSpent),
                LinkWrite::Superseded => return Err(CredentialError::LinkSuperseded),
            },
        }
        tracing::info!(user = user_id, integration = %definition.integration_id, keys = rows.len(), "credentials stored");
        self.nudge.user(user_id);
        let keys: Vec<&str> = values.keys().map(String::as_str).collect();
        crate::audit::record(
            self.store.as_ref(),
            &[crate::audit::entry(
                user_id,
                crate::audit::action::STORED,
                Some(&definition.integration_id),
                None,
                Some(format!("keys: {}", keys.join(", "))),
            )],
        )
        .await;
        Ok(())
    }

    /// One stored value of a user's connection (`None` if not stored),
    /// for roost's own use: a webhook signing secret.
    pub async fn value(
        &self,
        user_id: &str,
        integration: &str,
        key: &str,
    ) -> Result<Option<String>, CredentialError> {
        let rows = self.store.credentials(user_id, Some(integration)).await?;
        match rows.iter().find(|row| row.cred_key == key) {
            Some(row) => Ok(Some(cipher::open(&self.keys, row)?)),
            None => Ok(None),
        }
    }

    /// Which integrations a user has connected.
    pub async fn connected(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConnectedIntegration>, CredentialError> {
        let mut by_integration: BTreeMap<String, ConnectedIntegration> = BTreeMap::new();
        for row in self.store.credentials(user_id, None).await? {
            let entry = by_integration
                .entry(row.integration_id.clone())
                .or_insert_with(|| ConnectedIntegration {
                    integration: row.integration_id.clone(),
                    keys: Vec::new(),
                    status: crate::store::CredentialStatus::Connected,
                    updated_at: 0,
                });
            entry.keys.push(row.cred_key);
            entry.updated_at = entry.updated_at.max(row.updated_at);
            if row.status != crate::store::CredentialStatus::Connected {
                entry.status = row.status;
            }
        }
        Ok(by_integration.into_values().collect())
    }

    /// Removes a user's credentials for an integration.
    pub async fn delete(&self, user_id: &str, integration: &str) -> Result<bool, CredentialError> {
        let deleted = self.store.delete_credentials(user_id, integration).await? > 0;
        if deleted {
            crate::audit::record(
                self.store.as_ref(),
                &[crate::audit::entry(
                    user_id,
                    crate::audit::action::DELETED,
                    Some(integration),
                    None,
                    None,
                )],
            )
            .await;
        }
        Ok(deleted)
    }

    /// The integrations (of `definitions`) whose required credentials the
    /// user has not stored.
    pub async fn missing(
        &self,
        user_id: &str,
        definitions: &[Arc<IntegrationDefinition>],
    ) -> Result<Vec<Arc<IntegrationDefinition>>, CredentialError> {
        let stored: BTreeSet<(String, String)> = self
            .store
            .credentials(user_id, None)
            .await?
            .into_iter()
            .filter(|row| row.status == crate::store::CredentialStatus::Connected)
            .map(|row| (row.integration_id, row.cred_key))
            .collect();
        Ok(definitions
            .iter()
            .filter(|d| {
                d.required_keys()
                    .any(|spec| !stored.contains(&(d.integration_id.clone(), spec.key.clone())))
            })
            .cloned()
            .collect())
    }

    /// The environment a run gets: every stored credential of the given
    /// integrations under the env var its spec names (refresh tokens under
    /// their refresh env var). Fails if a required one is missing.
    pub async fn get_env_for_execution(
        &self,
        user_id: &str,
        registry: &Registry,
        integrations: &[String],
    ) -> Result<BTreeMap<String, String>, CredentialError> {
        let mut env = BTreeMap::new();
        let mut missing = Vec::new();
        for id in integrations {
            let Some(definition) = registry.get(id) else {
                missing.push(id.clone());
                continue;
            };
            let rows: BTreeMap<String, _> = self
                .store
                .credentials(user_id, Some(id))
                .await?
                .into_iter()
                .map(|row| (row.cred_key.clone(), row))
                .collect();
            for spec in &definition.credentials {
                match rows.get(&spec.key) {
                    Some(row) => {
                        env.insert(spec.env_var.clone(), cipher::open(&self.keys, row)?);
                    }
                    None if spec.required => missing.push(format!("{id}.{}", spec.key)),
                    None => {}
                }
                if let (Some(key), Some(var)) = (&spec.refresh_key, &spec.refresh_env_var)
                    && let Some(row) = rows.get(key)
                {
                    env.insert(var.clone(), cipher::open(&self.keys, row)?);
                }
            }
        }
        if missing.is_empty() {
            Ok(env)
        } else {
            Err(CredentialError::Missing(missing))
        }
    }
}

/// Re-encrypts every stored credential, and every HTTP handler's signing
/// secret, under the current key of `keys`. Returns how many were
/// rewritten. The credentials all or nothing, then the secrets one by one
/// (a secret not yet resealed still opens with its old key).
pub async fn reencrypt_all(store: &dyn Store, keys: &MasterKeys) -> Result<usize, CredentialError> {
    let rows = store.all_credentials().await?;
    let fresh: Vec<_> = rows
        .iter()
        .map(|row| cipher::reseal(keys, row))
        .collect::<Result<_, _>>()?;
    store.reencrypt_credentials(&fresh).await?;
    let entries: Vec<_> = fresh
        .iter()
        .map(|row| {
            crate::audit::entry(
                &row.user_id,
                crate::audit::action::KEY_ROTATED,
                Some(&row.integration_id),
                None,
                Some(format!(
                    "`{}` re-encrypted under key {}",
                    row.cred_key, row.key_id
                )),
            )
        })
        .collect();
    crate::audit::record(store, &entries).await;
    // HTTP handlers' signing secrets are sealed under the same keys.
    let mut resealed = 0;
    for endpoint in store.sealed_http_secrets().await? {
        let Some(sealed) = &endpoint.secret else {
            continue;
        };
        let (user, script, handler) = (&endpoint.user_id, &endpoint.script_id, &endpoint.handler);
        let secret = cipher::open_handler_secret(keys, user, script, handler, sealed)?;
        let fresh = cipher::seal_handler_secret(keys, user, script, handler, &secret);
        store.set_http_secret(user, script, handler, &fresh).await?;
        resealed += 1;
    }
    Ok(fresh.len() + resealed)
}

#[cfg(test)]
mod tests;
