//! The audit trail of credentials: every read for a run, every change, every
//! OAuth connection and refresh, every key rotation, with the user, the
//! integration, the run and the time, never a value. Users read their own
//! entries at `GET /v1/audit`.
//!
//! Recording is best effort in one respect only: a failure to write an entry
//! is logged as an error but does not fail the run or the change that
//! caused it (the credential work has already happened by then).

use std::sync::Arc;

use crate::store::{AuditFilter, AuditRow, Store, StoreResult, new_id, now_millis};

/// Users' audit trails, as they read them.
#[derive(Clone)]
pub struct AuditTrail {
    store: Arc<dyn Store>,
}

impl AuditTrail {
    /// The trails in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// A user's entries, newest first.
    pub async fn list(&self, user_id: &str, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        self.store.list_audit(user_id, filter).await
    }
}

/// What happened to a credential.
pub mod action {
    /// A run received the credential as env vars.
    pub const READ_FOR_RUN: &str = "credential.read_for_run";
    /// The user stored a value (API, or setup form).
    pub const STORED: &str = "credential.stored";
    /// The user disconnected the integration.
    pub const DELETED: &str = "credential.deleted";
    /// An OAuth flow stored tokens.
    pub const CONNECTED: &str = "credential.oauth_connected";
    /// An access token was refreshed.
    pub const REFRESHED: &str = "credential.refreshed";
    /// The provider refused a stored credential (401) that roost could not
    /// renew: it needs reconnecting or replacing.
    pub const REFUSED: &str = "credential.refused";
    /// The master key was rotated and the credential re-encrypted.
    pub const KEY_ROTATED: &str = "keys.rotated";
}

/// One entry, ready to record.
pub fn entry(
    user_id: &str,
    action: &str,
    integration: Option<&str>,
    run_id: Option<&str>,
    detail: Option<String>,
) -> AuditRow {
    AuditRow {
        id: new_id("aud"),
        user_id: user_id.to_string(),
        action: action.to_string(),
        integration: integration.map(str::to_string),
        run_id: run_id.map(str::to_string),
        detail,
        at: now_millis(),
    }
}

/// Records entries; a failure is logged, not returned.
pub async fn record(store: &dyn Store, entries: &[AuditRow]) {
    if entries.is_empty() {
        return;
    }
    if let Err(err) = store.insert_audit(entries).await {
        tracing::error!(error = %err, entries = entries.len(), "writing the audit trail failed");
    }
}
