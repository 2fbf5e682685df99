//! The OAuth 2.0 authorization-code flow with PKCE (S256), and token refresh
//! before runs, shared by concurrent runs (single flight).

mod ahead;
mod callback_errors;
mod client_config;
mod host_credentials;
mod http_client;
mod token;

pub use ahead::RefreshAhead;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth2::basic::BasicErrorResponseType;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};

pub use callback_errors::callback_error_message;
use callback_errors::standard_code;
pub use client_config::{OAuthClientConfig, from_env};

use crate::credentials::cipher::{self, Slot};
use crate::credentials::{CredentialError, CredentialService};
use crate::registry::{AuthType, CredentialType, IntegrationDefinition, Registry};
use crate::setup_link::SetupLinks;
use crate::store::CredentialStatus;
use crate::store::{CredentialRow, LinkUse, LinkWrite, OAuthStateRow, StoreError, now_millis};

/// How long an authorization may take between the redirect and the callback.
const STATE_TTL_MS: i64 = 10 * 60 * 1000;
/// Slot name of the encrypted PKCE verifier.
const VERIFIER_SLOT: &str = "pkce_verifier";
/// Credential status once the provider refused a refresh for good.
pub const RECONNECT_NEEDED: CredentialStatus = CredentialStatus::ReconnectNeeded;
/// Credential status of a key (not OAuth) the provider refused with a 401.
pub const REJECTED: CredentialStatus = CredentialStatus::Rejected;

/// Why an OAuth step failed. Messages are for the person in the browser.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// No client id configured for this integration.
    #[error(
        "`{0}` has no OAuth client configured on this server (set ROOST_OAUTH_{1}_CLIENT_ID and _CLIENT_SECRET)"
    )]
    NotConfigured(String, String),
    /// The integration does not use OAuth.
    #[error("`{0}` does not use OAuth")]
    NotOAuth(String),
    /// The state is unknown or already used.
    #[error("this authorization is unknown or was already used; start again from the setup link")]
    UnknownState,
    /// The state expired.
    #[error("this authorization took too long and expired; start again from the setup link")]
    ExpiredState,
    /// The setup link the authorization began from was spent meanwhile (by
    /// another authorization begun from it), or the integration was
    /// connected again since the link was made: nothing was stored.
    #[error(
        "this setup link was already used, or the integration was connected again since it was made, so this authorization stored nothing; deploy again for a fresh link"
    )]
    LinkSpent,
    /// The provider's token endpoint said no (`invalid_grant`…): its code
    /// if it is a standard one, and its own explanation quoted as the
    /// provider's (the token endpoint answers roost directly, unlike the
    /// callback's query, which anyone can write).
    #[error(
        "the provider refused the request ({}){}",
        standard_code(error),
        description.as_deref().map(|d| format!("; the provider's explanation: \"{d}\"")).unwrap_or_default()
    )]
    Provider {
        /// OAuth error code.
        error: String,
        /// Provider's explanation.
        description: Option<String>,
    },
    /// The code exchange or refresh failed otherwise.
    #[error("the token request failed: {0}")]
    Token(String),
    /// The refresh token was refused: the user must connect again.
    #[error(
        "`{integration}` must be connected again: the provider no longer accepts its refresh token; open {setup_url}"
    )]
    ReconnectNeeded {
        /// Integration.
        integration: String,
        /// Where to reconnect.
        setup_url: String,
    },
    /// A configured URL is malformed.
    #[error("bad OAuth endpoint configuration: {0}")]
    Config(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Credential handling failed.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

/// One lock per (user, integration): the single flight of refreshes.
type RefreshLocks = Mutex<HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>>;

/// The OAuth side of the credential store.
pub struct OAuth {
    credentials: CredentialService,
    clients: BTreeMap<String, OAuthClientConfig>,
    redirect_uri: String,
    refresh_window: Duration,
    http: reqwest::Client,
    links: SetupLinks,
    base_url: String,
    inflight: RefreshLocks,
}

impl OAuth {
    /// Forgets a pending authorization the provider declined: a state works
    /// once, whatever the answer.
    pub async fn abandon(&self, state: &str) -> Result<(), OAuthError> {
        self.credentials.store().take_oauth_state(state).await?;
        Ok(())
    }

    /// An OAuth service redirecting back to `{base_url}/oauth/callback`.
    pub fn new(
        credentials: CredentialService,
        clients: BTreeMap<String, OAuthClientConfig>,
        base_url: &str,
        refresh_window: Duration,
        links: SetupLinks,
    ) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("building the HTTP client");
        Self {
            credentials,
            clients,
            redirect_uri: format!("{}/oauth/callback", base_url.trim_end_matches('/')),
            refresh_window,
            http,
            links,
            base_url: base_url.trim_end_matches('/').to_string(),
            inflight: Mutex::default(),
        }
    }

    /// For an OAuth integration this server has no client for, what the
    /// operator must set; None when it can be connected.
    pub fn missing_client_settings(&self, definition: &IntegrationDefinition) -> Option<String> {
        let id = &definition.integration_id;
        if definition.auth_type != AuthType::Oauth2 || self.clients.contains_key(id) {
            return None;
        }
        let var = id.to_ascii_uppercase().replace('-', "_");
        Some(format!(
            "ROOST_OAUTH_{var}_CLIENT_ID and ROOST_OAUTH_{var}_CLIENT_SECRET (or client_id and \
             client_secret under [oauth.{id}] in roost.toml)"
        ))
    }

    fn client(&self, definition: &IntegrationDefinition) -> Result<token::Client, OAuthError> {
        let id = &definition.integration_id;
        let oauth = match (definition.auth_type, &definition.oauth2_config) {
            (AuthType::Oauth2, Some(oauth)) => oauth,
            _ => return Err(OAuthError::NotOAuth(id.clone())),
        };
        let config = self.clients.get(id).ok_or_else(|| {
            OAuthError::NotConfigured(id.clone(), id.to_ascii_uppercase().replace('-', "_"))
        })?;
        let auth_url = config
            .authorization_url
            .clone()
            .unwrap_or_else(|| oauth.authorization_url.clone());
        let token_url = config
            .token_url
            .clone()
            .unwrap_or_else(|| oauth.token_url.clone());
        let mut client = token::UnsetClient::new(ClientId::new(config.client_id.clone()))
            .set_auth_uri(AuthUrl::new(auth_url).map_err(|e| OAuthError::Config(e.to_string()))?)
            .set_token_uri(TokenUrl::new(token_url).map_err(|e| OAuthError::Config(e.to_string()))?)
            .set_redirect_uri(
                RedirectUrl::new(self.redirect_uri.clone())
                    .map_err(|e| OAuthError::Config(e.to_string()))?,
            );
        if let Some(secret) = &config.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.clone()));
        }
        Ok(client)
    }

    /// Starts an authorization for `user_id`: returns the provider URL to
    /// redirect the browser to.
    /// `link_id` is the id of the setup link this started from: the link is
    /// spent when the connection completes, and a second authorization
    /// begun from it then fails.
    pub async fn start(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        link_id: Option<&str>,
    ) -> Result<String, OAuthError> {
        let client = self.client(definition)?;
        let oauth = definition
            .oauth2_config
            .as_ref()
            .expect("checked by client()");
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge)
            .add_scopes(oauth.scopes.iter().cloned().map(Scope::new));
        for (name, value) in &oauth.additional_parameters {
            request = request.add_extra_param(name, value);
        }
        let (url, state) = request.url();
        let sealed = cipher::seal(
            self.credentials.keys(),
            &Slot {
                user_id,
                integration_id: &definition.integration_id,
                cred_key: VERIFIER_SLOT,
            },
            verifier.secret(),
            None,
        );
        let now = now_millis();
        self.credentials
            .store()
            .put_oauth_state(&OAuthStateRow {
                state: state.secret().clone(),
                user_id: user_id.to_string(),
                integration_id: definition.integration_id.clone(),
                key_id: sealed.key_id,
                nonce: sealed.nonce,
                ciphertext: sealed.ciphertext,
                redirect_uri: self.redirect_uri.clone(),
                expires_at: now + STATE_TTL_MS,
                created_at: now,
                link_id: link_id.map(str::to_string),
            })
            .await?;
        tracing::info!(user = user_id, integration = %definition.integration_id, "OAuth authorization started");
        Ok(url.to_string())
    }

    /// Finishes an authorization: the state must be known, unused and fresh;
    /// the code is exchanged with the PKCE verifier and the tokens stored.
    /// Returns the user and integration connected.
    pub async fn callback(
        &self,
        registry: &Registry,
        state: &str,
        code: &str,
    ) -> Result<(String, String), OAuthError> {
        let row = self
            .credentials
            .store()
            .take_oauth_state(state)
            .await?
            .ok_or(OAuthError::UnknownState)?;
        if row.expires_at < now_millis() {
            return Err(OAuthError::ExpiredState);
        }
        let definition = registry
            .get(&row.integration_id)
            .ok_or(OAuthError::UnknownState)?;
        let verifier = cipher::open(
            self.credentials.keys(),
            &CredentialRow {
                user_id: row.user_id.clone(),
                integration_id: row.integration_id.clone(),
                cred_key: VERIFIER_SLOT.into(),
                key_id: row.key_id,
                nonce: row.nonce,
                ciphertext: row.ciphertext,
                placement: None,
                status: CredentialStatus::Connected,
                updated_at: 0,
                expires_at: None,
            },
        )?;
        let client = self.client(definition)?;
        let http = self.http_client();
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(&http)
            .await
            .map_err(token_error)?;
        // Links live a day at most; the spent mark only has to outlive that.
        let link = row
            .link_id
            .as_ref()
            .map(|id| LinkUse::new(id, now_millis() + 2 * 24 * 3600 * 1000));
        self.store_tokens(&row.user_id, definition, &token, None, link.as_ref())
            .await?;
        if let Some((account, app)) = token.extra_fields().account() {
            self.credentials
                .store()
                .bind_account(&row.user_id, &row.integration_id, account, app)
                .await?;
        }
        crate::audit::record(
            self.credentials.store().as_ref(),
            &[crate::audit::entry(
                &row.user_id,
                crate::audit::action::CONNECTED,
                Some(&row.integration_id),
                None,
                None,
            )],
        )
        .await;
        tracing::info!(user = %row.user_id, integration = %row.integration_id, "OAuth integration connected");
        self.credentials.changed(&row.user_id);
        Ok((row.user_id, row.integration_id))
    }

    /// Stores a token response: through `link` for a new connection (which
    /// spends it, and fails if it was spent), directly for a refresh.
    async fn store_tokens(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        token: &token::Tokens,
        placement: Option<String>,
        link: Option<&LinkUse>,
    ) -> Result<(), OAuthError> {
        let spec = oauth_spec(definition)
            .ok_or_else(|| OAuthError::NotOAuth(definition.integration_id.clone()))?;
        let keys = self.credentials.keys();
        let integration_id = definition.integration_id.as_str();
        let placement = placement.or_else(|| {
            spec.placement
                .as_ref()
                .map(|p| serde_json::to_string(p).expect("placement serialises"))
        });
        let mut access = cipher::seal(
            keys,
            &Slot {
                user_id,
                integration_id,
                cred_key: &spec.key,
            },
            token.access_token().secret(),
            placement,
        );
        access.expires_at = token
            .expires_in()
            .map(|ttl| now_millis() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let mut rows = vec![access];
        // A provider that sends no new refresh token keeps the old one valid.
        if let (Some(key), Some(refresh)) = (&spec.refresh_key, token.refresh_token()) {
            rows.push(cipher::seal(
                keys,
                &Slot {
                    user_id,
                    integration_id,
                    cred_key: key,
                },
                refresh.secret(),
                None,
            ));
        }
        let store = self.credentials.store();
        match link {
            None => store.put_credentials(&rows).await?,
            Some(link) => match store.put_credentials_through_link(&rows, link).await? {
                LinkWrite::Stored => {}
                LinkWrite::Spent | LinkWrite::Superseded => return Err(OAuthError::LinkSpent),
            },
        }
        Ok(())
    }

    /// Refreshes the access token of `user_id`'s `definition` if it expires
    /// within the refresh window. Concurrent callers for the same credential
    /// wait for one refresh instead of each sending their own.
    pub async fn refresh_if_needed(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
    ) -> Result<(), OAuthError> {
        self.refresh_within(user_id, definition, self.refresh_window)
            .await
    }

    /// `refresh_if_needed` with its own window: the background refresh
    /// (oauth/ahead.rs) looks further ahead than a run does.
    pub async fn refresh_within(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        window: Duration,
    ) -> Result<(), OAuthError> {
        let Some(spec) = oauth_spec(definition) else {
            return Ok(());
        };
        let seen_before = self.access_expiry(user_id, definition, &spec.key).await?;
        let lock = self.refresh_lock(user_id, definition);
        let _guard = lock.lock().await;
        // Read after taking the lock: a refresh that just finished is seen here.
        let rows = self
            .credentials
            .store()
            .credentials(user_id, Some(&definition.integration_id))
            .await?;
        let Some(access) = rows.iter().find(|row| row.cred_key == spec.key) else {
            return Ok(());
        };
        if access.status == RECONNECT_NEEDED {
            return Err(self.reconnect(user_id, definition));
        }
        if access.expires_at != seen_before {
            return Ok(()); // Another run refreshed it while this one waited.
        }
        let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        match access.expires_at {
            Some(expires_at) if expires_at - now_millis() <= window => {}
            _ => return Ok(()),
        }
        let Some(refresh_row) = spec
            .refresh_key
            .as_ref()
            .and_then(|key| rows.iter().find(|row| row.cred_key == *key))
        else {
            return Ok(()); // Nothing to refresh with; the run gets the token as it is.
        };
        self.exchange_refresh(user_id, definition, access, refresh_row)
            .await
    }

    /// Trades `refresh_row`'s refresh token for a new access token and
    /// stores it. A refused refresh token marks the integration
    /// reconnect-needed. Callers hold the integration's refresh lock.
    async fn exchange_refresh(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        access: &CredentialRow,
        refresh_row: &CredentialRow,
    ) -> Result<(), OAuthError> {
        let refresh = cipher::open(self.credentials.keys(), refresh_row)?;
        let client = self.client(definition)?;
        let http = self.http_client();
        let result = client
            .exchange_refresh_token(&RefreshToken::new(refresh))
            .request_async(&http)
            .await;
        match result {
            Ok(token) => {
                self.store_tokens(user_id, definition, &token, access.placement.clone(), None)
                    .await?;
                tracing::info!(user = user_id, integration = %definition.integration_id, "access token refreshed");
                crate::audit::record(
                    self.credentials.store().as_ref(),
                    &[crate::audit::entry(
                        user_id,
                        crate::audit::action::REFRESHED,
                        Some(&definition.integration_id),
                        None,
                        None,
                    )],
                )
                .await;
                Ok(())
            }
            Err(RequestTokenError::ServerResponse(response))
                if *response.error() == BasicErrorResponseType::InvalidGrant =>
            {
                self.credentials
                    .store()
                    .set_credential_status(user_id, &definition.integration_id, RECONNECT_NEEDED)
                    .await?;
                tracing::warn!(user = user_id, integration = %definition.integration_id, "refresh token refused; reconnect needed");
                Err(self.reconnect(user_id, definition))
            }
            Err(other) => Err(token_error(other)),
        }
    }

    /// The lock that makes refreshes of one user's integration single-flight.
    fn refresh_lock(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
    ) -> Arc<tokio::sync::Mutex<()>> {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        inflight
            .entry((user_id.to_string(), definition.integration_id.clone()))
            .or_default()
            .clone()
    }

    async fn access_expiry(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        key: &str,
    ) -> Result<Option<i64>, OAuthError> {
        let rows = self
            .credentials
            .store()
            .credentials(user_id, Some(&definition.integration_id))
            .await?;
        Ok(rows
            .into_iter()
            .find(|row| row.cred_key == key)
            .and_then(|row| row.expires_at))
    }

    /// A token-request client for the `oauth2` crate. Its futures own a
    /// handle on the pooled client, so they are `Send` for any caller.
    fn http_client(
        &self,
    ) -> impl Fn(
        oauth2::HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<oauth2::HttpResponse, http_client::TransportError>> + Send>,
    > + use<> {
        let client = self.http.clone();
        move |request| {
            let client = client.clone();
            Box::pin(async move { http_client::send(&client, request).await })
        }
    }

    fn reconnect(&self, user_id: &str, definition: &IntegrationDefinition) -> OAuthError {
        let url = definition.setup_url(&self.base_url, user_id);
        OAuthError::ReconnectNeeded {
            integration: definition.integration_id.clone(),
            setup_url: self.links.sign(&url, &definition.integration_id, user_id),
        }
    }

    /// The environment for a run: refreshes OAuth tokens near expiry first,
    /// then decrypts every credential into its env var.
    pub async fn env_for_run(
        &self,
        user_id: &str,
        registry: &Registry,
        integrations: &[String],
    ) -> Result<BTreeMap<String, String>, OAuthError> {
        for id in integrations {
            if let Some(definition) = registry.get(id) {
                self.refresh_if_needed(user_id, definition).await?;
            }
        }
        Ok(self
            .credentials
            .get_env_for_execution(user_id, registry, integrations)
            .await?)
    }
}

/// The credential an OAuth flow produces.
fn oauth_spec(definition: &IntegrationDefinition) -> Option<&crate::registry::CredentialSpec> {
    definition
        .credentials
        .iter()
        .find(|spec| spec.kind == CredentialType::Oauth2)
}

fn token_error<E: std::error::Error>(
    err: RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> OAuthError {
    match err {
        RequestTokenError::ServerResponse(response) => OAuthError::Provider {
            error: response.error().to_string(),
            description: response.error_description().cloned(),
        },
        RequestTokenError::Request(e) => OAuthError::Token(e.to_string()),
        RequestTokenError::Parse(e, _) => {
            OAuthError::Token(format!("unreadable token response: {e}"))
        }
        RequestTokenError::Other(e) => OAuthError::Token(e),
    }
}
