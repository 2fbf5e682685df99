//! The credentials of host-mediated integration calls: decrypted on the
//! host at the moment of the call, refreshed before expiry as for runs, and
//! refreshed once more when the provider refuses the token (401).

use async_trait::async_trait;

use super::{OAuth, OAuthError, RECONNECT_NEEDED, oauth_spec};
use crate::connectors::{CallError, CredentialSource, HostCredential};
use crate::credentials::cipher;
use crate::registry::IntegrationDefinition;
use crate::store::{CredentialRow, now_millis};

#[async_trait]
impl CredentialSource for OAuth {
    async fn credential(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
    ) -> Result<Option<HostCredential>, CallError> {
        // One read serves the common case; the refresh path (with its lock
        // and re-reads) runs only for a token near expiry or refused.
        let mut rows = self.rows(user_id, definition).await?;
        if self.needs_refresh(definition, &rows) {
            self.refresh_if_needed(user_id, definition)
                .await
                .map_err(|e| call_error(e, definition))?;
            rows = self.rows(user_id, definition).await?;
        }
        let mut parts = Vec::new();
        for spec in &definition.credentials {
            let Some(placement) = &spec.placement else {
                continue;
            };
            match rows.iter().find(|row| row.cred_key == spec.key) {
                Some(row) => {
                    let value = cipher::open(self.credentials.keys(), row).map_err(|_| {
                        CallError::Internal(format!(
                            "the stored `{}` credential cannot be decrypted with this server's keys",
                            definition.integration_id
                        ))
                    })?;
                    parts.push((placement.clone(), value));
                }
                None if spec.required => {
                    return Err(CallError::NotConnected {
                        message: format!(
                            "`{}` is not connected for this user; connect it at {}",
                            definition.integration_id,
                            self.links.sign(
                                &definition.setup_url(&self.base_url, user_id),
                                &definition.integration_id,
                                user_id
                            )
                        ),
                    });
                }
                None => {}
            }
        }
        Ok((!parts.is_empty()).then_some(HostCredential { parts }))
    }

    async fn refresh_rejected(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        rejected: &HostCredential,
    ) -> Result<bool, CallError> {
        let Some(spec) = oauth_spec(definition) else {
            return Ok(false);
        };
        let lock = self.refresh_lock(user_id, definition);
        let _guard = lock.lock().await;
        let rows = self.rows(user_id, definition).await?;
        let Some(access) = rows.iter().find(|row| row.cred_key == spec.key) else {
            return Ok(false);
        };
        if access.status == RECONNECT_NEEDED {
            return Err(call_error(self.reconnect(user_id, definition), definition));
        }
        let current = cipher::open(self.credentials.keys(), access)
            .map_err(|e| CallError::Internal(format!("decrypting the token: {e}")))?;
        if !rejected.parts.iter().any(|(_, value)| *value == current) {
            return Ok(true); // Another call refreshed it meanwhile.
        }
        let Some(refresh_row) = spec
            .refresh_key
            .as_ref()
            .and_then(|key| rows.iter().find(|row| row.cred_key == *key))
        else {
            return Ok(false); // Nothing to refresh with: the 401 stands.
        };
        self.exchange_refresh(user_id, definition, access, refresh_row)
            .await
            .map_err(|e| call_error(e, definition))?;
        Ok(true)
    }
}

impl OAuth {
    async fn rows(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
    ) -> Result<Vec<CredentialRow>, CallError> {
        self.credentials
            .store()
            .credentials(user_id, Some(&definition.integration_id))
            .await
            .map_err(|e| CallError::Internal(format!("reading credentials: {e}")))
    }

    /// Whether the OAuth token in `rows` is marked for reconnection or
    /// expires within the refresh window (what `refresh_if_needed` acts on).
    fn needs_refresh(&self, definition: &IntegrationDefinition, rows: &[CredentialRow]) -> bool {
        let Some(spec) = oauth_spec(definition) else {
            return false;
        };
        let Some(access) = rows.iter().find(|row| row.cred_key == spec.key) else {
            return false;
        };
        let window = i64::try_from(self.refresh_window.as_millis()).unwrap_or(i64::MAX);
        access.status == RECONNECT_NEEDED
            || access
                .expires_at
                .is_some_and(|at| at - now_millis() <= window)
    }
}

fn call_error(err: OAuthError, definition: &IntegrationDefinition) -> CallError {
    match err {
        OAuthError::ReconnectNeeded { .. } => CallError::NotConnected {
            message: err.to_string(),
        },
        other => CallError::Internal(format!(
            "refreshing the `{}` token failed: {other}",
            definition.integration_id
        )),
    }
}
