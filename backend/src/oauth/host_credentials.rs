//! The credentials of host-mediated integration calls: decrypted on the
//! host at the moment of the call, refreshed before expiry as for runs, and
//! refreshed once more when the provider refuses the token (401); a
//! refused credential that cannot be renewed is marked for the user to
//! replace, with a setup link.

use async_trait::async_trait;

use super::{OAuth, OAuthError, RECONNECT_NEEDED, REJECTED, oauth_spec};
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

    async fn credential_refused(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        rejected: &HostCredential,
    ) -> Result<HostCredential, CallError> {
        let oauth = oauth_spec(definition).is_some();
        let renewed = if oauth {
            self.refresh_rejected(user_id, definition, rejected).await
        } else {
            self.reject_key(user_id, definition, rejected).await
        };
        let id = &definition.integration_id;
        let (status, message) = match renewed {
            Ok(true) => {
                return self.credential(user_id, definition).await?.ok_or_else(|| {
                    CallError::Internal(format!("the `{id}` credential vanished after its renewal"))
                });
            }
            // The refresh was refused: the credential is marked already.
            Err(CallError::NotConnected { message }) => (RECONNECT_NEEDED, message),
            Err(other) => return Err(other),
            Ok(false) => {
                let (status, message) = if oauth {
                    // Nothing to refresh with: the token is dead for good.
                    (
                        RECONNECT_NEEDED,
                        self.reconnect(user_id, definition).to_string(),
                    )
                } else {
                    let url = self.links.sign(
                        &definition.setup_url(&self.base_url, user_id),
                        id,
                        user_id,
                    );
                    (
                        REJECTED,
                        format!(
                            "the provider refused the stored `{id}` credential (401); store a new one at {url}"
                        ),
                    )
                };
                self.credentials
                    .store()
                    .set_credential_status(user_id, id, status)
                    .await
                    .map_err(|e| CallError::Internal(format!("recording the refusal: {e}")))?;
                (status, message)
            }
        };
        tracing::warn!(user = user_id, integration = %id, status = %status, "the provider refused a stored credential");
        crate::audit::record(
            self.credentials.store().as_ref(),
            &[crate::audit::entry(
                user_id,
                crate::audit::action::REFUSED,
                Some(id),
                None,
                Some(format!("the provider answered 401; now {status}")),
            )],
        )
        .await;
        Err(CallError::NotConnected { message })
    }
}

impl OAuth {
    /// Refreshes the OAuth token `rejected` after a 401, unless another
    /// call already did. True when a different token is now stored; false
    /// when there is nothing to refresh with.
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

    /// A 401 for a key that is not OAuth: true when the stored value is no
    /// longer the one refused (the user replaced it meanwhile), false when
    /// it is, and the key must be replaced.
    async fn reject_key(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        rejected: &HostCredential,
    ) -> Result<bool, CallError> {
        let rows = self.rows(user_id, definition).await?;
        for row in &rows {
            let current = cipher::open(self.credentials.keys(), row)
                .map_err(|e| CallError::Internal(format!("decrypting the credential: {e}")))?;
            if rejected.parts.iter().any(|(_, value)| *value == current) {
                return Ok(false);
            }
        }
        Ok(!rows.is_empty())
    }

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
