use std::collections::BTreeMap;

use serde::Deserialize;

/// OAuth application credentials for one integration, and optional
/// endpoint overrides (tests, self-hosted providers).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClientConfig {
    /// The application's client id.
    pub client_id: String,
    /// The application's client secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Replaces the definition's authorization URL.
    #[serde(default)]
    pub authorization_url: Option<String>,
    /// Replaces the definition's token URL.
    #[serde(default)]
    pub token_url: Option<String>,
}

impl std::fmt::Debug for OAuthClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClientConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("authorization_url", &self.authorization_url)
            .field("token_url", &self.token_url)
            .finish()
    }
}

/// Reads `ROOST_OAUTH_<ID>_CLIENT_ID`, `_CLIENT_SECRET`, `_AUTHORIZATION_URL`
/// and `_TOKEN_URL` for each integration id, over the file's `[oauth.<id>]`
/// tables (the environment wins field by field).
pub fn from_env(
    ids: impl Iterator<Item = String>,
    mut file: BTreeMap<String, OAuthClientConfig>,
    env: impl Fn(&str) -> Option<String>,
) -> BTreeMap<String, OAuthClientConfig> {
    for id in ids {
        let prefix = format!("ROOST_OAUTH_{}_", id.to_ascii_uppercase().replace('-', "_"));
        let get = |name: &str| env(&format!("{prefix}{name}")).filter(|v| !v.is_empty());
        let client_id = get("CLIENT_ID");
        let existing = file.remove(&id);
        let Some(client_id) = client_id.or_else(|| existing.as_ref().map(|c| c.client_id.clone())) else {
            continue;
        };
        let base = existing.unwrap_or_default();
        file.insert(
            id,
            OAuthClientConfig {
                client_id,
                client_secret: get("CLIENT_SECRET").or(base.client_secret),
                authorization_url: get("AUTHORIZATION_URL").or(base.authorization_url),
                token_url: get("TOKEN_URL").or(base.token_url),
            },
        );
    }
    file
}
