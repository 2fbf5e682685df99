use serde::Serialize;

/// A roost user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Stable id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Creation time (Unix ms).
    pub created_at: i64,
}

/// A stored integration definition.
#[derive(Debug, Clone)]
pub struct DefinitionRow {
    /// Integration id.
    pub integration_id: String,
    /// Semantic version of the definition.
    pub version: String,
    /// The definition as JSON.
    pub definition: String,
    /// Last upsert (Unix ms).
    pub updated_at: i64,
}

/// One encrypted credential value. Never holds plaintext.
#[derive(Clone)]
pub struct CredentialRow {
    /// Owner.
    pub user_id: String,
    /// Integration the value belongs to.
    pub integration_id: String,
    /// Credential key from the integration's spec (`access_token`, `api_key`…).
    pub cred_key: String,
    /// Id of the master key that encrypted it.
    pub key_id: String,
    /// AES-GCM nonce (96 bits).
    pub nonce: Vec<u8>,
    /// Ciphertext with its authentication tag.
    pub ciphertext: Vec<u8>,
    /// Where the provider expects the value (JSON of the definition's placement).
    pub placement: Option<String>,
    /// `connected`, or `reconnect_needed` once a refresh failed for good.
    pub status: String,
    /// Last write (Unix ms).
    pub updated_at: i64,
    /// When an OAuth access token expires (Unix ms).
    pub expires_at: Option<i64>,
}

/// A pending OAuth authorization (the `state` parameter's server side).
#[derive(Clone)]
pub struct OAuthStateRow {
    /// The random `state` sent to the provider.
    pub state: String,
    /// Who is connecting.
    pub user_id: String,
    /// What they connect.
    pub integration_id: String,
    /// Master key id of the encrypted PKCE verifier.
    pub key_id: String,
    /// Nonce of the encrypted verifier.
    pub nonce: Vec<u8>,
    /// The encrypted PKCE verifier.
    pub ciphertext: Vec<u8>,
    /// Redirect URI sent with the authorization request.
    pub redirect_uri: String,
    /// Expiry (Unix ms).
    pub expires_at: i64,
    /// Creation (Unix ms).
    pub created_at: i64,
}

impl std::fmt::Debug for CredentialRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ciphertext is not secret, but nothing credential-shaped is
        // worth printing.
        f.debug_struct("CredentialRow")
            .field("user_id", &self.user_id)
            .field("integration_id", &self.integration_id)
            .field("cred_key", &self.cred_key)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A script (the stable identity across versions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Script {
    /// Stable id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Name, unique per user.
    pub name: String,
    /// Version runs use.
    pub current_version: i64,
    /// First deploy (Unix ms).
    pub created_at: i64,
    /// Last deploy or rollback (Unix ms).
    pub updated_at: i64,
}

/// One immutable version of a script.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptVersion {
    /// Script id.
    pub script_id: String,
    /// Version number, from 1.
    pub version: i64,
    /// SHA-256 of the component.
    pub content_hash: String,
    /// Script metadata (handlers, triggers, integrations) as JSON.
    pub metadata: serde_json::Value,
    /// Deploy time (Unix ms).
    pub created_at: i64,
}

/// A trigger of a script's current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerRow {
    /// Handler it runs.
    pub handler: String,
    /// `schedule`, `event` or `manual`.
    pub kind: String,
    /// Cron expression or event type (empty for manual).
    pub spec: String,
    /// IANA timezone for schedules.
    pub timezone: Option<String>,
}

/// What a deploy stores.
#[derive(Debug, Clone)]
pub struct NewScriptVersion {
    /// Owner.
    pub user_id: String,
    /// Script name (the script is created on first deploy).
    pub name: String,
    /// Component bytes.
    pub component: Vec<u8>,
    /// SHA-256 of the component.
    pub content_hash: String,
    /// Metadata as JSON.
    pub metadata: serde_json::Value,
    /// Triggers of this version.
    pub triggers: Vec<TriggerRow>,
}

/// The triggers a script's metadata declares, one per handler.
pub fn triggers_of(metadata: &roost_sandbox::metadata::ScriptMetadata) -> Vec<TriggerRow> {
    use roost_sandbox::Trigger;
    metadata
        .handlers
        .iter()
        .map(|handler| {
            let (kind, spec, timezone) = match &handler.trigger {
                Trigger::Manual => ("manual", String::new(), None),
                Trigger::Schedule { cron } => ("schedule", cron.clone(), None),
                Trigger::Event { name } => ("event", name.clone(), None),
            };
            TriggerRow { handler: handler.name.clone(), kind: kind.into(), spec, timezone }
        })
        .collect()
}
