//! Webhook deliveries from integrations, read the way each integration's
//! definition says (`webhooks` in its JSON: see `registry::WebhookDef`).
//! A delivery is verified before anything is read from it; a URL check is
//! answered; anything else becomes an event of the user in the URL, with
//! the provider's delivery id as its idempotency key (providers retry), in
//! the same transaction as its runs are queued.
//!
//! When the secret is the server's (one app for every user, as Slack's
//! signing secret), the signature does not say whose delivery it is: it
//! must name the account the user connected, and a delivery first received
//! at one user's URL is refused at another's.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::event::{EventError, EventService, Submitted};
use crate::abuse::Guards;
use crate::credentials::{CredentialError, CredentialService};
use crate::registry::{Delivery, Headers, ReadError, Registry, SecretSource};
use crate::store::{NewEvent, Store, StoreError, now_millis};

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No such integration with webhooks, or no such user: the same answer
    /// for both, so the URL does not tell which.
    #[error("no webhook at this URL")]
    NotFound,
    /// The server secret this integration needs is not set.
    #[error("set {0} to receive this integration's webhooks")]
    NotConfigured(String),
    /// The user has not stored the secret deliveries are checked with.
    #[error(
        "this account has no `{key}` of `{integration}` to check its webhooks with; store it \
         (PUT /v1/credentials/{integration}) first"
    )]
    NoSecret {
        /// The integration.
        integration: String,
        /// The credential that holds the secret.
        key: String,
    },
    /// The user has not connected the account deliveries must name.
    #[error(
        "this account has not connected `{0}`, so it takes none of its webhooks; connect it \
         through a setup link first"
    )]
    NotConnected(String),
    /// The signature does not verify.
    #[error("the webhook signature does not verify: {0}")]
    BadSignature(&'static str),
    /// The verified body cannot be read.
    #[error(transparent)]
    Unreadable(#[from] ReadError),
    /// The delivery names an account or app this user did not connect.
    #[error("this delivery comes from an account or app this user did not connect")]
    AccountMismatch,
    /// The user's events arrive faster than `events_per_minute`; the
    /// provider retries later.
    #[error("more than {limit} events a minute for this account; retry in {} s", .wait.as_secs().max(1))]
    RateLimited {
        /// The limit.
        limit: u32,
        /// How long until one more is taken.
        wait: std::time::Duration,
    },
    /// The delivery was first received for another user.
    #[error("this delivery was already received for another account")]
    Replayed,
    /// The event was not accepted.
    #[error(transparent)]
    Event(#[from] EventError),
    /// Reading the user's secret failed.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a verified delivery asked for.
#[derive(Debug)]
pub enum WebhookAnswer {
    /// A URL check: the value to send back.
    Challenge(Value),
    /// An event of the user, submitted.
    Event {
        /// Its id (`shopify:<delivery id>`).
        event_id: String,
        /// What became of it.
        submitted: Submitted,
    },
}

/// Receives every integration's webhook deliveries.
#[derive(Clone)]
pub struct Webhooks {
    registry: Arc<Registry>,
    credentials: CredentialService,
    events: EventService,
    server_secrets: Arc<BTreeMap<String, String>>,
    base_url: String,
    guards: Arc<Guards>,
}

/// Where one integration's deliveries for a script's events go.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WebhookUrl {
    /// The integration (`shopify`).
    pub integration: String,
    /// The script's event types this integration's deliveries become.
    pub events: Vec<String>,
    /// The URL to give the provider.
    pub url: String,
}

impl Webhooks {
    /// Deliveries checked against the user's credentials or the server's
    /// `server_secrets` (by integration id, `-` written `_`) become events
    /// through `events`, held to `guards`' per-user event rate and queue
    /// caps like posted events (a provider retries a delivery refused with
    /// 429).
    pub fn new(
        registry: Arc<Registry>,
        credentials: CredentialService,
        events: EventService,
        server_secrets: BTreeMap<String, String>,
        base_url: &str,
        guards: Arc<Guards>,
    ) -> Self {
        Self {
            registry,
            credentials,
            events,
            server_secrets: Arc::new(server_secrets),
            base_url: base_url.trim_end_matches('/').to_string(),
            guards,
        }
    }

    /// The webhook URLs a user's script listens through: one per
    /// integration with webhooks whose events (`<integration>.…`) its
    /// handlers take. `None` if the user has no such script.
    pub async fn for_script(
        &self,
        user_id: &str,
        script_id: &str,
    ) -> Result<Option<Vec<WebhookUrl>>, StoreError> {
        if self.store().get_script(user_id, script_id).await?.is_none() {
            return Ok(None);
        }
        let mut by_integration: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for trigger in self.store().triggers(script_id).await? {
            if trigger.kind != crate::store::TriggerKind::Event {
                continue;
            }
            let Some((integration, _)) = trigger.spec.split_once('.') else {
                continue;
            };
            if self
                .registry
                .get(integration)
                .is_some_and(|d| d.webhooks.is_some())
            {
                let events = by_integration.entry(integration.to_string()).or_default();
                if !events.contains(&trigger.spec) {
                    events.push(trigger.spec);
                }
            }
        }
        Ok(Some(
            by_integration
                .into_iter()
                .map(|(integration, events)| WebhookUrl {
                    url: Self::url(&self.base_url, &integration, user_id),
                    integration,
                    events,
                })
                .collect(),
        ))
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.credentials.store()
    }

    /// One delivery of `integration` for `user_id`.
    pub async fn receive(
        &self,
        integration: &str,
        user_id: &str,
        headers: &dyn Headers,
        body: &[u8],
    ) -> Result<WebhookAnswer, WebhookError> {
        let definition = self
            .registry
            .get(integration)
            .ok_or(WebhookError::NotFound)?;
        let def = definition.webhooks.as_ref().ok_or(WebhookError::NotFound)?;
        // A server without the secret answers so before looking at users.
        let server_secret = match &def.secret {
            SecretSource::Server => Some(
                self.server_secrets
                    .get(&integration.replace('-', "_"))
                    .cloned()
                    .ok_or_else(|| WebhookError::NotConfigured(server_secret_var(integration)))?,
            ),
            SecretSource::Credential { .. } => None,
        };
        if self.store().get_user(user_id).await?.is_none() {
            return Err(WebhookError::NotFound);
        }
        let secret = match (server_secret, &def.secret) {
            (Some(secret), _) => secret,
            (None, SecretSource::Credential { key }) => self
                .credentials
                .value(user_id, integration, key)
                .await?
                .ok_or_else(|| WebhookError::NoSecret {
                    integration: integration.to_string(),
                    key: key.clone(),
                })?,
            (None, SecretSource::Server) => {
                return Err(WebhookError::NotConfigured(server_secret_var(integration)));
            }
        };
        if let Err(reason) = def.verify(&secret, headers, body, now_millis() / 1000) {
            tracing::warn!(integration, reason, "refused a webhook delivery");
            return Err(WebhookError::BadSignature(reason));
        }
        let (event_type, delivery_id, account, payload) =
            match def.read(integration, headers, body)? {
                Delivery::Challenge(answer) => return Ok(WebhookAnswer::Challenge(answer)),
                Delivery::Event {
                    event_type,
                    delivery_id,
                    account,
                    payload,
                } => (event_type, delivery_id, account, payload),
            };
        if let Some((account, app)) = &account {
            self.check_account(integration, user_id, account, app.as_deref())
                .await?;
        }
        if def.secret == SecretSource::Server {
            // The provider sends each delivery to one URL: the same signed
            // body at another user's URL is a replay.
            let first_for = self
                .store()
                .claim_delivery(integration, &delivery_id, user_id)
                .await?;
            if first_for != user_id {
                tracing::warn!(
                    integration,
                    "refused a delivery replayed to another user's URL"
                );
                return Err(WebhookError::Replayed);
            }
        }
        // Counted once verified, so a stranger's forged requests cannot
        // spend the user's budget.
        if let Err(wait) = self.guards.events.check(user_id) {
            return Err(WebhookError::RateLimited {
                limit: self.guards.limits.events_per_minute,
                wait,
            });
        }
        let source = match &account {
            Some((account, _)) => format!("{integration}:{account}"),
            None => integration.to_string(),
        };
        let event = NewEvent {
            user_id: user_id.to_string(),
            event_id: format!("{integration}:{delivery_id}"),
            event_type,
            source: Some(source),
            payload,
            source_run_id: None,
            chain_depth: 0,
        };
        let submitted = self
            .events
            .submit(&event, Some(self.guards.limits.queue_limits()))
            .await?;
        Ok(WebhookAnswer::Event {
            event_id: event.event_id,
            submitted,
        })
    }

    /// The delivery must come from the account (and app) the user connected.
    async fn check_account(
        &self,
        integration: &str,
        user_id: &str,
        account: &str,
        app: Option<&str>,
    ) -> Result<(), WebhookError> {
        let Some((bound, bound_app)) = self.store().bound_account(user_id, integration).await?
        else {
            return Err(WebhookError::NotConnected(integration.to_string()));
        };
        let same_app = bound_app.is_none_or(|bound_app| app == Some(bound_app.as_str()));
        if bound != account || !same_app {
            tracing::warn!(
                integration,
                "refused a delivery from an account the user did not connect"
            );
            return Err(WebhookError::AccountMismatch);
        }
        Ok(())
    }

    /// Where `user_id`'s deliveries of `integration` go.
    pub fn url(base_url: &str, integration: &str, user_id: &str) -> String {
        format!(
            "{}/webhooks/{integration}/{user_id}",
            base_url.trim_end_matches('/')
        )
    }
}

/// The variable that holds the server secret of `integration`.
pub fn server_secret_var(integration: &str) -> String {
    format!(
        "ROOST_WEBHOOK_SECRET_{}",
        integration.to_ascii_uppercase().replace('-', "_")
    )
}
