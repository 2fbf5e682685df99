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

/// Tokens found valid in the last few seconds, by hash, with their grant:
/// a busy client's requests then authenticate without a database read
/// each (on SQLite that read cost a hand-off to a connection thread and
/// back, per event). Only hits are kept, so a new token works at once and
/// bad tokens fill nothing. A revocation clears them all on every node
/// (see `accounts::Accounts::watch_revocations`); a token deleted from
/// the database by hand is still accepted for up to `ttl`.
pub struct KnownTokens {
    ttl: std::time::Duration,
    /// Set when revocations can no longer be heard: nothing is remembered.
    disabled: std::sync::atomic::AtomicBool,
    /// Moves on at each clear: a lookup that began before a revocation
    /// must not remember what it read (see `generation`).
    generation: std::sync::atomic::AtomicU64,
    entries: std::sync::Mutex<std::collections::HashMap<String, KnownToken>>,
}

struct KnownToken {
    grant: crate::store::TokenGrant,
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
            disabled: Default::default(),
            generation: Default::default(),
            entries: Default::default(),
        }
    }

    /// The grant of a token hash found valid less than `ttl` ago.
    pub fn get(&self, token_hash: &str) -> Option<crate::store::TokenGrant> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(token_hash)
            .filter(|known| known.found_at.elapsed() < self.ttl)
            .map(|known| known.grant.clone())
    }

    /// Forgets every token and remembers none from now on.
    pub fn disable(&self) {
        self.disabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.clear();
    }

    /// Forgets every token: the next request of each is checked again.
    pub fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        entries.clear();
    }

    /// Taken before a lookup in the database, and handed to `remember`.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records that `token_hash` was found to grant `grant` by a lookup
    /// that began at `generation`; nothing if a clear came in between (the
    /// grant read may be one just revoked).
    pub fn remember(&self, token_hash: &str, grant: &crate::store::TokenGrant, generation: u64) {
        if self.ttl.is_zero() || self.disabled.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation() != generation {
            return;
        }
        if entries.len() >= MAX_KNOWN_TOKENS {
            entries.retain(|_, known| known.found_at.elapsed() < self.ttl);
            if entries.len() >= MAX_KNOWN_TOKENS {
                entries.clear();
            }
        }
        entries.insert(
            token_hash.to_string(),
            KnownToken {
                grant: grant.clone(),
                found_at: std::time::Instant::now(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::{Scope, TokenGrant, TokenRow, User};

    fn ada() -> TokenGrant {
        TokenGrant {
            user: User {
                id: "usr_ada".into(),
                name: "ada".into(),
                created_at: 0,
            },
            token: TokenRow {
                id: "tok_1".into(),
                user_id: "usr_ada".into(),
                name: "default".into(),
                scopes: Scope::ALL.to_vec(),
                created_at: 0,
                expires_at: None,
                last_used_at: None,
            },
        }
    }

    #[test]
    fn a_known_token_is_forgotten_after_its_ttl() {
        let known = KnownTokens::new(Duration::from_millis(50));
        assert_eq!(known.get("h"), None, "nothing is known before a lookup");
        known.remember("h", &ada(), known.generation());
        assert_eq!(known.get("h"), Some(ada()));
        assert_eq!(known.get("other"), None);
        let before = known.generation();
        known.clear();
        assert_eq!(known.get("h"), None, "cleared");
        known.remember("h", &ada(), before);
        assert_eq!(
            known.get("h"),
            None,
            "a lookup from before the clear is not kept"
        );
        known.remember("h", &ada(), known.generation());
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
        known.remember("h", &ada(), known.generation());
        assert_eq!(known.get("h"), None);
    }

    #[test]
    fn the_known_tokens_stay_bounded() {
        let known = KnownTokens::new(Duration::from_secs(60));
        for n in 0..MAX_KNOWN_TOKENS + 10 {
            known.remember(&format!("h{n}"), &ada(), known.generation());
        }
        let held = known.entries.lock().unwrap().len();
        assert!(held <= MAX_KNOWN_TOKENS, "{held} tokens held");
        assert_eq!(
            known.get(&format!("h{}", MAX_KNOWN_TOKENS + 9)),
            Some(ada())
        );
    }
}
