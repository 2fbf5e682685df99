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

    /// A session for the owner of `token`; `None` if no user has it.
    pub(crate) async fn sign_in(&self, token: &str) -> Result<Option<SignedIn>, StoreError> {
        let Some(user) = self.store.user_by_token_hash(&hash_token(token)).await? else {
            return Ok(None);
        };
        let cookie = random_hex();
        let now = now_millis();
        let expires_at = now + i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2);
        self.store
            .insert_web_session(
                &hash_token(&cookie),
                &user.id,
                &random_hex(),
                now,
                expires_at,
            )
            .await?;
        tracing::info!(user = %user.id, "dashboard sign-in");
        Ok(Some(SignedIn { cookie }))
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
