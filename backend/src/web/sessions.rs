//! Signing in to the dashboard: an API token pasted once becomes a
//! server-side session, found by the SHA-256 of a random cookie.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;

use crate::auth::hash_token;
use crate::store::{Store, StoreError, WebSession, now_millis};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "roost_session";

/// How long a sign-in lasts; then the token is pasted again.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Dashboard sessions.
#[derive(Clone)]
pub struct WebSessions {
    store: Arc<dyn Store>,
    ttl: Duration,
}

/// Why a token does not sign in.
pub(crate) enum SignInRefused {
    /// Unknown, revoked or expired.
    Invalid,
    /// It lacks some scope.
    Narrow,
}

/// A new session: the cookie's value, shown to the browser once.
pub(crate) struct SignedIn {
    pub(crate) cookie: String,
}

impl WebSessions {
    /// Sessions kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            ttl: SESSION_TTL,
        }
    }

    /// A session for the owner of `token`, which must be valid and hold
    /// every scope (the dashboard does everything); it ends when the token
    /// expires or is revoked, if not before.
    pub(crate) async fn sign_in(
        &self,
        token: &str,
    ) -> Result<Result<SignedIn, SignInRefused>, StoreError> {
        let now = now_millis();
        let Some(grant) = self.store.token_grant(&hash_token(token), now).await? else {
            return Ok(Err(SignInRefused::Invalid));
        };
        if !grant.is_full() {
            return Ok(Err(SignInRefused::Narrow));
        }
        let user = grant.user;
        let cookie = random_hex();
        let expires_at = (now + i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2))
            .min(grant.token.expires_at.unwrap_or(i64::MAX));
        self.store
            .insert_web_session(
                &hash_token(&cookie),
                &user.id,
                &grant.token.id,
                &random_hex(),
                now,
                expires_at,
            )
            .await?;
        tracing::info!(user = %user.id, "dashboard sign-in");
        Ok(Ok(SignedIn { cookie }))
    }

    /// The live session a cookie names.
    pub(crate) async fn find(&self, cookie: &str) -> Result<Option<WebSession>, StoreError> {
        self.store
            .web_session(&hash_token(cookie), now_millis())
            .await
    }

    /// Ends the session a cookie names, on every node at once.
    pub(crate) async fn sign_out(&self, cookie: &str) -> Result<(), StoreError> {
        self.store.delete_web_session(&hash_token(cookie)).await?;
        Ok(())
    }

    /// Seconds a new session lasts (the cookie's Max-Age).
    pub(crate) fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs()
    }
}

/// 256 random bits, hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}
