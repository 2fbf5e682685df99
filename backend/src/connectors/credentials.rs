//! Where a connector gets the user's credential: only on the host, at the
//! moment of the call.

use async_trait::async_trait;

use super::error::CallError;
use crate::registry::{IntegrationDefinition, Placement};

/// The credential values a provider request carries, each with the
/// placement its definition names. `Debug` shows placements only.
#[derive(Clone, PartialEq, Eq)]
pub struct HostCredential {
    /// Placement and decrypted value of every credential with a placement.
    pub parts: Vec<(Placement, String)>,
}

impl std::fmt::Debug for HostCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.parts.iter().map(|(p, _)| &p.name))
            .finish()
    }
}

/// Reads (and refreshes) users' credentials for host-mediated calls.
#[async_trait]
pub trait CredentialSource: Send + Sync {
    /// The credential to send for `user_id`'s `definition`, refreshed first
    /// when it is about to expire. `None` for integrations without one.
    async fn credential(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
    ) -> Result<Option<HostCredential>, CallError>;

    /// The provider refused `rejected` with a 401. An OAuth token is
    /// refreshed (unless another call already did) and the new credential
    /// returned; a key the user replaced meanwhile is returned as it now
    /// is. Otherwise the credential is marked (`reconnect_needed` for
    /// OAuth, `rejected` for a key) and the answer is `NotConnected` with
    /// a setup URL.
    async fn credential_refused(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        rejected: &HostCredential,
    ) -> Result<HostCredential, CallError>;
}
