//! Who may call roost: users (made and removed by the operator) and their
//! API tokens (named, scoped, optionally expiring, revoked at once).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::watch;

use crate::auth::{KnownTokens, hash_token, new_token};
use crate::store::{NewToken, Scope, Store, StoreError, TokenGrant, TokenRow, User, now_millis};

/// Longest a token may be made to last (ten years), in ms.
const MAX_LIFETIME_MS: i64 = 10 * 366 * 86_400_000;

/// Most tokens one user keeps.
const MAX_TOKENS_PER_USER: usize = 100;

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// No such token or user (of this user's, for a token).
    #[error("no {0} with this id")]
    NotFound(&'static str),
    /// A token or user name that is empty, too long or not printable.
    #[error("{0}")]
    InvalidName(String),
    /// Scopes that are not a subset of read, deploy, run, events.
    #[error("{0}")]
    InvalidScopes(String),
    /// An expiry in the past, too far ahead, or not a duration.
    #[error("{0}")]
    InvalidExpiry(String),
    /// A token asking for more than the token making it holds.
    #[error("{0}")]
    Escalation(String),
    /// Too many tokens already.
    #[error("a user keeps at most {MAX_TOKENS_PER_USER} tokens; revoke some first")]
    TooManyTokens,
    /// The name is taken.
    #[error("{0} already exists")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AccountError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => AccountError::Conflict(what),
            other => AccountError::Store(other),
        }
    }
}

/// What a new token is asked to be.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub name: String,
    /// `None`: the scopes of the token asking.
    pub scopes: Option<Vec<Scope>>,
    /// How long it lasts (ms); `None`: until revoked.
    pub lifetime_ms: Option<i64>,
}

/// A token just made: its value, shown this once, and its record.
#[derive(Debug, Clone)]
pub struct MadeToken {
    pub token: String,
    pub record: TokenRow,
}

/// Users and tokens, over the store, with the node's memory of tokens
/// found valid.
pub struct Accounts {
    store: Arc<dyn Store>,
    known: KnownTokens,
}

impl Accounts {
    /// Accounts in `store`; valid tokens remembered for `ttl`.
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Self {
        Self {
            store,
            known: KnownTokens::new(ttl),
        }
    }

    /// What the token with this hash grants, if it is valid now.
    pub async fn grant(&self, token_hash: &str) -> Result<Option<TokenGrant>, StoreError> {
        let now = now_millis();
        if let Some(grant) = self.known.get(token_hash) {
            if grant.token.expires_at.is_none_or(|at| at > now) {
                return Ok(Some(grant));
            }
            return Ok(None);
        }
        let generation = self.known.generation();
        let found = self.store.token_grant(token_hash, now).await?;
        if let Some(grant) = &found {
            self.known.remember(token_hash, grant, generation);
        }
        Ok(found)
    }

    /// Makes a token for `by`'s user, with at most `by`'s scopes.
    pub async fn create_token(
        &self,
        by: &TokenGrant,
        request: TokenRequest,
    ) -> Result<MadeToken, AccountError> {
        check_name("token", &request.name)?;
        let scopes = request.scopes.unwrap_or_else(|| by.token.scopes.clone());
        if scopes.is_empty() {
            return Err(AccountError::InvalidScopes(
                "a token needs at least one scope: read, deploy, run, events".into(),
            ));
        }
        if let Some(missing) = scopes.iter().find(|scope| !by.allows(**scope)) {
            return Err(AccountError::Escalation(format!(
                "this token lacks the `{missing}` scope, so it cannot give it"
            )));
        }
        let now = now_millis();
        let expires_at = match request.lifetime_ms {
            None => None,
            Some(ms) if ms <= 0 || ms > MAX_LIFETIME_MS => {
                return Err(AccountError::InvalidExpiry(
                    "a token lasts from 1 second to 10 years".into(),
                ));
            }
            Some(ms) => Some(now + ms),
        };
        // A token cannot outlive the one that made it.
        let expires_at = match (expires_at, by.token.expires_at) {
            (Some(mine), Some(parent)) => Some(mine.min(parent)),
            (None, parent) => parent,
            (mine, None) => mine,
        };
        if self.store.list_tokens(&by.user.id).await?.len() >= MAX_TOKENS_PER_USER {
            return Err(AccountError::TooManyTokens);
        }
        let token = new_token();
        let record = self
            .store
            .create_token(&NewToken {
                user_id: &by.user.id,
                name: &request.name,
                scopes: &scopes,
                expires_at,
                token_hash: &hash_token(&token),
                now,
            })
            .await?;
        tracing::info!(user = %by.user.id, token_id = %record.id, scopes = %Scope::join(&scopes), "API token created");
        Ok(MadeToken { token, record })
    }

    /// The user's tokens.
    pub async fn tokens(&self, user_id: &str) -> Result<Vec<TokenRow>, AccountError> {
        Ok(self.store.list_tokens(user_id).await?)
    }

    /// Revokes one of the user's tokens, here at once and on every other
    /// node as soon as it hears (PostgreSQL's notice, at the commit).
    pub async fn revoke_token(&self, user_id: &str, token_id: &str) -> Result<(), AccountError> {
        let revoked = self.store.revoke_token(user_id, token_id).await?;
        self.known.clear();
        if !revoked {
            return Err(AccountError::NotFound("token"));
        }
        tracing::info!(user = %user_id, token_id = %token_id, "API token revoked");
        Ok(())
    }

    /// Revokes every token of a user and ends their dashboard sessions.
    pub async fn revoke_all(&self, user_id: &str) -> Result<u64, AccountError> {
        self.user(user_id).await?;
        let count = self.store.revoke_user_tokens(user_id).await?;
        self.known.clear();
        tracing::info!(user = %user_id, tokens = count, "every API token of a user revoked");
        Ok(count)
    }

    /// Makes a user with a first token (`default`, every scope).
    pub async fn create_user(&self, name: &str) -> Result<(User, String), AccountError> {
        check_name("user", name)?;
        let token = new_token();
        let user = self.store.create_user(name, &hash_token(&token)).await?;
        tracing::info!(user = %user.id, "user created");
        Ok((user, token))
    }

    /// Every user.
    pub async fn users(&self) -> Result<Vec<User>, AccountError> {
        Ok(self.store.list_users().await?)
    }

    /// A user by id.
    pub async fn user(&self, user_id: &str) -> Result<User, AccountError> {
        self.store
            .get_user(user_id)
            .await?
            .ok_or(AccountError::NotFound("user"))
    }

    /// Removes a user and everything of theirs; their tokens stop working
    /// at once.
    pub async fn remove_user(&self, user_id: &str) -> Result<(), AccountError> {
        let removed = self.store.delete_user(user_id).await?;
        self.known.clear();
        if !removed {
            return Err(AccountError::NotFound("user"));
        }
        tracing::info!(user = %user_id, "user removed");
        Ok(())
    }

    /// Forgets the remembered tokens whenever another node says some were
    /// revoked (or its notices may have been lost), until `stop`.
    pub async fn watch_revocations(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let notices = match self.store.token_revocations().await {
            Ok(Some(notices)) => notices,
            Ok(None) => return,
            Err(err) => {
                // Without notices, a token revoked elsewhere would live
                // on here for a while: remember none instead.
                tracing::warn!(error = %err, "cannot hear token revocations; tokens are checked on every request");
                self.known.disable();
                return;
            }
        };
        let mut notices = notices;
        loop {
            tokio::select! {
                notice = notices.next() => match notice {
                    Some(()) => self.known.clear(),
                    None => {
                        self.known.disable();
                        return;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}

/// A user or token name: 1 to 64 printable characters.
fn check_name(what: &str, name: &str) -> Result<(), AccountError> {
    let valid =
        !name.trim().is_empty() && name.len() <= 64 && name.chars().all(|c| !c.is_control());
    if valid {
        Ok(())
    } else {
        Err(AccountError::InvalidName(format!(
            "a {what} name is 1 to 64 printable characters"
        )))
    }
}
