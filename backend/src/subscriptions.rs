//! Keeps each user's webhook subscriptions at providers (Shopify's webhook
//! subscriptions, GitHub's repository hooks) in step with what their
//! scripts listen for: when a user is connected and a deployed script takes
//! `shopify.orders.create`, roost asks Shopify to send `orders/create` to
//! the user's webhook URL, and removes it once no script takes it.
//!
//! A deploy, a rollback, a deleted script or a changed credential nudges
//! the user; a background task reconciles, through the integration's own
//! methods (`webhooks.subscriptions` in its definition). A subscription is
//! claimed in the store before the provider is asked, so two nodes do not
//! both create it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore as _;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::connectors::{CallRequest, Connectors, CredentialSource};
use crate::credentials::{CredentialError, CredentialService};
use crate::registry::{IntegrationDefinition, Registry, SecretSource, SubscriptionsDef, render};
use crate::store::{Store, StoreError, SubscriptionKey, SubscriptionRow, now_millis};
use crate::triggers::Webhooks;

/// A claim whose creator never recorded the provider's id (it died in
/// between) is given up after this long and made again.
const ABANDONED_AFTER_MS: i64 = 2 * 60 * 1000;

/// Tells the reconciler a user's scripts or credentials changed. The
/// default tells no one (tools that run without a server).
#[derive(Clone, Default)]
pub struct Nudge(Option<mpsc::UnboundedSender<String>>);

impl Nudge {
    /// `user_id`'s subscriptions may need to change.
    pub fn user(&self, user_id: &str) {
        if let Some(sender) = &self.0 {
            let _ = sender.send(user_id.to_string());
        }
    }
}

/// The reconciler's end of the nudges.
pub struct Nudges(mpsc::UnboundedReceiver<String>);

/// A connected pair.
pub fn channel() -> (Nudge, Nudges) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (Nudge(Some(sender)), Nudges(receiver))
}

/// What one reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Subscriptions created at the provider.
    pub created: usize,
    /// Subscriptions removed.
    pub removed: usize,
    /// What failed, for the log (no secrets: provider errors are masked
    /// by the connectors' error text).
    pub failures: Vec<String>,
}

/// Why a user's subscriptions could not be looked at.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The user's credentials could not be read.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

/// Reconciles users' subscriptions.
pub struct Subscriptions {
    registry: Arc<Registry>,
    connectors: Arc<Connectors>,
    source: Arc<dyn CredentialSource>,
    credentials: CredentialService,
    base_url: String,
}

impl Subscriptions {
    /// Subscriptions made with `connectors`, carrying credentials from
    /// `source`, pointing at `base_url`'s webhook URLs.
    pub fn new(
        registry: Arc<Registry>,
        connectors: Arc<Connectors>,
        source: Arc<dyn CredentialSource>,
        credentials: CredentialService,
        base_url: &str,
    ) -> Self {
        Self {
            registry,
            connectors,
            source,
            credentials,
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.credentials.store()
    }

    /// Reconciles every user who may need it once at start (a change a
    /// stopped node was nudged about is not lost), then each nudged user
    /// until `stop`, a failed attempt again after `retry`.
    pub fn start(
        self: Arc<Self>,
        mut nudges: Nudges,
        mut stop: watch::Receiver<bool>,
        retry: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut again: BTreeSet<String> = BTreeSet::new();
            for user in self.users_to_sweep().await {
                if !self.reconcile_user(&user).await {
                    again.insert(user);
                }
            }
            loop {
                let first = tokio::select! {
                    _ = stop.changed() => return,
                    nudged = nudges.0.recv() => match nudged {
                        Some(user) => Some(user),
                        None => return,
                    },
                    _ = tokio::time::sleep(retry), if !again.is_empty() => None,
                };
                let mut users: BTreeSet<String> = std::mem::take(&mut again);
                users.extend(first);
                while let Ok(user) = nudges.0.try_recv() {
                    users.insert(user);
                }
                for user in users {
                    if !self.reconcile_user(&user).await {
                        again.insert(user);
                    }
                }
            }
        })
    }

    /// The integrations roost makes subscriptions at.
    fn subscribing(&self) -> impl Iterator<Item = &Arc<IntegrationDefinition>> {
        self.registry.all().filter(|definition| {
            definition
                .webhooks
                .as_ref()
                .is_some_and(|w| w.subscriptions.is_some())
        })
    }

    /// The users connected to an integration with subscriptions, or with
    /// subscriptions on record: the only ones a sweep can change.
    async fn users_to_sweep(&self) -> BTreeSet<String> {
        let mut users = BTreeSet::new();
        for definition in self.subscribing() {
            match self
                .store()
                .subscription_users(&definition.integration_id)
                .await
            {
                Ok(found) => users.extend(found),
                Err(err) => tracing::warn!(integration = %definition.integration_id, error = %err,
                    "listing users for webhook subscriptions failed; their next change reconciles them"),
            }
        }
        users
    }

    /// Every integration with subscriptions, for one user; false if
    /// something failed (to be tried again).
    async fn reconcile_user(&self, user_id: &str) -> bool {
        let mut ok = true;
        for definition in self.subscribing() {
            let id = &definition.integration_id;
            match self.reconcile(user_id, definition).await {
                Ok(done) => {
                    if done.created + done.removed > 0 || !done.failures.is_empty() {
                        tracing::info!(user = user_id, integration = %id, created = done.created,
                            removed = done.removed, failures = ?done.failures, "webhook subscriptions reconciled");
                    }
                    ok &= done.failures.is_empty();
                }
                Err(err) => {
                    tracing::warn!(user = user_id, integration = %id, error = %err, "reconciling webhook subscriptions failed");
                    ok = false;
                }
            }
        }
        ok
    }

    /// Brings one user's subscriptions of `definition` in line with their
    /// scripts' event types.
    pub async fn reconcile(
        &self,
        user_id: &str,
        definition: &Arc<IntegrationDefinition>,
    ) -> Result<Reconciled, SubscriptionError> {
        let mut done = Reconciled::default();
        let (Some(webhooks), id) = (&definition.webhooks, &definition.integration_id) else {
            return Ok(done);
        };
        let Some(subs) = &webhooks.subscriptions else {
            return Ok(done);
        };
        let connected = self
            .credentials
            .missing(user_id, std::slice::from_ref(definition))
            .await?
            .is_empty();
        if !connected {
            // Without the credential roost cannot reach the provider; what
            // it made stays until the user connects again.
            return Ok(done);
        }
        let existing = self.store().subscriptions(user_id, id).await?;
        let mut topics: Vec<String> = self
            .store()
            .listened_event_types(user_id, &format!("{id}."))
            .await?
            .iter()
            .filter_map(|t| subs.topic(webhooks, id, t))
            .collect();
        topics.sort();
        topics.dedup();
        let scopes = self.scopes(user_id, id, subs, &mut done).await;
        let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
        if !topics.is_empty() {
            for scope in &scopes {
                if subs.together {
                    wanted.insert((scope.clone(), topics.join(",")));
                } else {
                    wanted.extend(topics.iter().map(|t| (scope.clone(), t.clone())));
                }
            }
        }
        let now = now_millis();
        let mut have: BTreeSet<(String, String)> = BTreeSet::new();
        for row in &existing {
            let recorded = (row.scope.clone(), row.topics.clone());
            let abandoned = row.remote_id.is_none() && now - row.created_at > ABANDONED_AFTER_MS;
            if wanted.contains(&recorded) && !abandoned {
                have.insert(recorded);
            } else if self
                .store()
                .drop_subscription(key(user_id, id, &row.scope, &row.topics))
                .await?
            {
                match self.remove(user_id, definition, subs, row).await {
                    Ok(()) => done.removed += 1,
                    Err(failure) => {
                        // Kept on record, so the next attempt removes it.
                        self.restore(user_id, id, row).await?;
                        done.failures.push(failure);
                    }
                }
            }
        }
        for (scope, topics) in wanted.difference(&have) {
            if !self
                .store()
                .claim_subscription(key(user_id, id, scope, topics))
                .await?
            {
                continue;
            }
            match self.create(user_id, definition, subs, scope, topics).await {
                Ok(remote_id) => {
                    self.store()
                        .subscription_created(key(user_id, id, scope, topics), &remote_id)
                        .await?;
                    done.created += 1;
                }
                Err(failure) => {
                    self.store()
                        .drop_subscription(key(user_id, id, scope, topics))
                        .await?;
                    done.failures.push(failure);
                }
            }
        }
        Ok(done)
    }

    async fn restore(
        &self,
        user_id: &str,
        id: &str,
        row: &SubscriptionRow,
    ) -> Result<(), StoreError> {
        self.store()
            .claim_subscription(key(user_id, id, &row.scope, &row.topics))
            .await?;
        if let Some(remote_id) = &row.remote_id {
            self.store()
                .subscription_created(key(user_id, id, &row.scope, &row.topics), remote_id)
                .await?;
        }
        Ok(())
    }

    /// The `each` items of the user's credential, or the one scope.
    async fn scopes(
        &self,
        user_id: &str,
        id: &str,
        subs: &SubscriptionsDef,
        done: &mut Reconciled,
    ) -> Vec<String> {
        let Some(each) = &subs.each else {
            return vec![String::new()];
        };
        let value = match self.credentials.value(user_id, id, &each.credential).await {
            Ok(value) => value.unwrap_or_default(),
            Err(err) => {
                done.failures
                    .push(format!("reading `{}`: {err}", each.credential));
                return Vec::new();
            }
        };
        let mut scopes = Vec::new();
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if subs.scope_vars(item).is_some() {
                scopes.push(item.to_string());
            } else {
                // The user's to fix; trying again would not help.
                tracing::warn!(user = user_id, integration = id, credential = %each.credential,
                    "an item of the credential is not in the expected form; no subscription for it");
            }
        }
        scopes
    }

    async fn create(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        subs: &SubscriptionsDef,
        scope: &str,
        key: &str,
    ) -> Result<String, String> {
        let mut vars = self.vars(user_id, definition, subs, scope).await?;
        if subs.together {
            let topics: Vec<Value> = key.split(',').map(|t| Value::String(t.into())).collect();
            vars.insert("topics".into(), Value::Array(topics));
        } else {
            vars.insert("topic".into(), Value::String(key.into()));
        }
        let output = self
            .call(
                user_id,
                definition,
                &subs.create.method,
                &render(&subs.create.input, &vars),
            )
            .await
            .map_err(|failure| failure.1)?;
        let pointer = subs.create.id.as_deref().unwrap_or_default();
        match output.pointer(pointer) {
            Some(id) if !id.is_null() => Ok(id.to_string()),
            _ => Err(format!(
                "{}: the answer has no id at `{pointer}`",
                subs.create.method
            )),
        }
    }

    async fn remove(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        subs: &SubscriptionsDef,
        row: &SubscriptionRow,
    ) -> Result<(), String> {
        let Some(remote_id) = &row.remote_id else {
            return Ok(());
        };
        let mut vars = self.vars(user_id, definition, subs, &row.scope).await?;
        let id: Value = serde_json::from_str(remote_id).unwrap_or(Value::String(remote_id.clone()));
        vars.insert("id".into(), id);
        let input = render(&subs.delete.input, &vars);
        match self
            .call(user_id, definition, &subs.delete.method, &input)
            .await
        {
            Ok(_) => Ok(()),
            // Already gone at the provider (removed by hand).
            Err((Some(404), _)) => Ok(()),
            Err((_, failure)) => Err(failure),
        }
    }

    /// `{url}`, `{secret}` and the scope's parts.
    async fn vars(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        subs: &SubscriptionsDef,
        scope: &str,
    ) -> Result<BTreeMap<String, Value>, String> {
        let id = &definition.integration_id;
        let mut vars: BTreeMap<String, Value> = BTreeMap::new();
        vars.insert(
            "url".into(),
            Webhooks::url(&self.base_url, id, user_id).into(),
        );
        if let Some(SecretSource::Credential { key }) =
            definition.webhooks.as_ref().map(|w| &w.secret)
            && uses_secret(subs)
        {
            vars.insert(
                "secret".into(),
                self.secret(user_id, definition, key).await?.into(),
            );
        }
        for (name, part) in subs.scope_vars(scope).unwrap_or_default() {
            vars.insert(name, part.into());
        }
        Ok(vars)
    }

    /// The user's webhook secret; one is made and stored if the user has
    /// none, so every subscription roost makes is signed.
    async fn secret(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        key: &str,
    ) -> Result<String, String> {
        let id = &definition.integration_id;
        if let Some(secret) = self
            .credentials
            .value(user_id, id, key)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(secret);
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = hex::encode(bytes);
        let values = BTreeMap::from([(key.to_string(), secret.clone())]);
        self.credentials
            .put(user_id, definition, &values, None)
            .await
            .map_err(|e| format!("storing a webhook secret: {e}"))?;
        Ok(secret)
    }

    async fn call(
        &self,
        user_id: &str,
        definition: &IntegrationDefinition,
        method: &str,
        input: &Value,
    ) -> Result<Value, (Option<u16>, String)> {
        let id = &definition.integration_id;
        let declared = [id.clone()];
        let input = serde_json::to_vec(input).expect("JSON serialises");
        let report = self
            .connectors
            .call(
                &CallRequest {
                    user_id,
                    declared: &declared,
                    integration: id,
                    method,
                    input: &input,
                },
                self.source.as_ref(),
            )
            .await;
        report
            .result
            .map_err(|err| (report.http_status, format!("{method}: {err}")))
    }
}

fn key<'a>(
    user_id: &'a str,
    integration: &'a str,
    scope: &'a str,
    topics: &'a str,
) -> SubscriptionKey<'a> {
    SubscriptionKey {
        user_id,
        integration,
        scope,
        topics,
    }
}

fn uses_secret(subs: &SubscriptionsDef) -> bool {
    subs.create.input.to_string().contains("{secret}")
}
