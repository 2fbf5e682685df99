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
        let Some(client_id) = client_id.or_else(|| existing.as_ref().map(|c| c.client_id.clone()))
        else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_wins_over_the_file_field_by_field() {
        let file = BTreeMap::from([(
            "gmail".to_string(),
            OAuthClientConfig {
                client_id: "file-id".into(),
                client_secret: Some("file-secret".into()),
                ..Default::default()
            },
        )]);
        let env = |name: &str| match name {
            "ROOST_OAUTH_GMAIL_CLIENT_SECRET" => Some("env-secret".to_string()),
            "ROOST_OAUTH_SLACK_CLIENT_ID" => Some("slack-id".to_string()),
            "ROOST_OAUTH_SLACK_TOKEN_URL" => Some("http://127.0.0.1:9/token".to_string()),
            _ => None,
        };
        let clients = from_env(
            ["gmail", "slack", "github"].map(String::from).into_iter(),
            file,
            env,
        );
        assert_eq!(clients["gmail"].client_id, "file-id");
        assert_eq!(
            clients["gmail"].client_secret.as_deref(),
            Some("env-secret")
        );
        assert_eq!(clients["slack"].client_id, "slack-id");
        assert_eq!(
            clients["slack"].token_url.as_deref(),
            Some("http://127.0.0.1:9/token")
        );
        assert!(!clients.contains_key("github"), "no client id, no client");
        assert!(!format!("{:?}", clients["gmail"]).contains("env-secret"));
    }
}
