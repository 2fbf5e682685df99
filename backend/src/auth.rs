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
