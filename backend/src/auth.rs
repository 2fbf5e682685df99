//! API tokens: random, shown once, stored as SHA-256 hashes.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix that makes roost tokens recognisable (and greppable by secret
/// scanners).
const TOKEN_PREFIX: &str = "roost_";

/// A new random API token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The stored form of a token. Tokens carry 256 bits of entropy, so a plain
/// SHA-256 is enough (no password-style stretching needed).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whose API token a request carries: a token found valid moments ago is
/// answered from memory (`KnownTokens`), any other from the store.
pub struct TokenUsers {
    store: std::sync::Arc<dyn crate::store::Store>,
    known: KnownTokens,
}

impl TokenUsers {
    /// Users by token in `store`, valid tokens remembered for `ttl`.
    pub fn new(store: std::sync::Arc<dyn crate::store::Store>, ttl: std::time::Duration) -> Self {
        Self {
            store,
            known: KnownTokens::new(ttl),
        }
    }

    /// The user owning the token with this hash.
    pub async fn user(
        &self,
        token_hash: &str,
    ) -> crate::store::StoreResult<Option<crate::store::User>> {
        if let Some(user) = self.known.get(token_hash) {
            return Ok(Some(user));
        }
        let found = self.store.user_by_token_hash(token_hash).await?;
        if let Some(user) = &found {
            self.known.remember(token_hash, user);
        }
        Ok(found)
    }
}

/// Tokens found valid in the last few seconds, by hash, with their user:
/// a busy client's requests then authenticate without a database read
/// each (on SQLite that read cost a hand-off to a connection thread and
/// back, per event). Only hits are kept, so a new token works at once and
/// bad tokens fill nothing. roost never revokes a token; one deleted from
/// the database by hand is still accepted for up to `ttl` on each node.
pub struct KnownTokens {
    ttl: std::time::Duration,
    entries: std::sync::Mutex<std::collections::HashMap<String, KnownToken>>,
}

struct KnownToken {
    user: crate::store::User,
    found_at: std::time::Instant,
}

/// Most tokens remembered at once; past it, the stale ones go, and if none
/// is stale, all of them.
const MAX_KNOWN_TOKENS: usize = 10_000;

impl KnownTokens {
    /// Remembers valid tokens for `ttl` (zero: never).
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            entries: Default::default(),
        }
    }

    /// The user of a token hash found valid less than `ttl` ago.
    pub fn get(&self, token_hash: &str) -> Option<crate::store::User> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(token_hash)
            .filter(|known| known.found_at.elapsed() < self.ttl)
            .map(|known| known.user.clone())
    }

    /// Records that `token_hash` was just found to be `user`'s.
    pub fn remember(&self, token_hash: &str, user: &crate::store::User) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_KNOWN_TOKENS {
            entries.retain(|_, known| known.found_at.elapsed() < self.ttl);
            if entries.len() >= MAX_KNOWN_TOKENS {
                entries.clear();
            }
        }
        entries.insert(
            token_hash.to_string(),
            KnownToken {
                user: user.clone(),
                found_at: std::time::Instant::now(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::User;

    fn ada() -> User {
        User {
            id: "usr_ada".into(),
            name: "ada".into(),
            created_at: 0,
        }
    }

    #[test]
    fn a_known_token_is_forgotten_after_its_ttl() {
        let known = KnownTokens::new(Duration::from_millis(50));
        assert_eq!(known.get("h"), None, "nothing is known before a lookup");
        known.remember("h", &ada());
        assert_eq!(known.get("h"), Some(ada()));
        assert_eq!(known.get("other"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            known.get("h"),
            None,
            "past the ttl the database is asked again"
        );
    }

    #[test]
    fn a_zero_ttl_remembers_nothing() {
        let known = KnownTokens::new(Duration::ZERO);
        known.remember("h", &ada());
        assert_eq!(known.get("h"), None);
    }

    #[test]
    fn the_known_tokens_stay_bounded() {
        let known = KnownTokens::new(Duration::from_secs(60));
        for n in 0..MAX_KNOWN_TOKENS + 10 {
            known.remember(&format!("h{n}"), &ada());
        }
        let held = known.entries.lock().unwrap().len();
        assert!(held <= MAX_KNOWN_TOKENS, "{held} tokens held");
        assert_eq!(
            known.get(&format!("h{}", MAX_KNOWN_TOKENS + 9)),
            Some(ada())
        );
    }
}
