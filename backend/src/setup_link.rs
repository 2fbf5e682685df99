//! Setup links are signed: `…/integrations/{id}/setup?user=…&expires=…&sig=…`.
//! The signature (HMAC-SHA256 with a key derived from the master key) covers
//! the integration, the user and the expiry, so nobody can craft a link that
//! connects credentials into someone else's account, and old links die.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a setup link stays valid.
pub const DEFAULT_TTL_SECS: i64 = 24 * 3600;

/// Signs and checks setup links.
#[derive(Clone)]
pub struct SetupLinks {
    key: [u8; 32],
    ttl_secs: i64,
}

/// Why a setup link was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// Missing parameters or a bad signature.
    #[error("this setup link is not valid; deploy the script again to get a fresh one")]
    Invalid,
    /// Too old.
    #[error("this setup link has expired; deploy the script again to get a fresh one")]
    Expired,
}

impl SetupLinks {
    /// Links signed with `key`, valid for `ttl_secs`.
    pub fn new(key: [u8; 32], ttl_secs: i64) -> Self {
        Self { key, ttl_secs }
    }

    fn signature(&self, integration: &str, user_id: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("roost-setup|v1|{integration}|{user_id}|{expires}").as_bytes());
        mac
    }

    /// Appends expiry and signature to a setup URL rendered from the template.
    pub fn sign(&self, url: &str, integration: &str, user_id: &str) -> String {
        let expires = now_secs() + self.ttl_secs;
        let sig = hex::encode(
            self.signature(integration, user_id, expires)
                .finalize()
                .into_bytes(),
        );
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}expires={expires}&sig={sig}")
    }

    /// Checks a link's parameters; constant-time on the signature.
    pub fn verify(
        &self,
        integration: &str,
        user_id: &str,
        expires: i64,
        sig: &str,
    ) -> Result<(), LinkError> {
        let sig = hex::decode(sig).map_err(|_| LinkError::Invalid)?;
        self.signature(integration, user_id, expires)
            .verify_slice(&sig)
            .map_err(|_| LinkError::Invalid)?;
        if expires < now_secs() {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

fn now_secs() -> i64 {
    crate::store::now_millis() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(url: &str) -> (i64, String) {
        let query = url.split_once('?').unwrap().1;
        let get = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_string()
        };
        (get("expires").parse().unwrap(), get("sig"))
    }

    #[test]
    fn signed_links_verify_only_for_their_user_and_integration() {
        let links = SetupLinks::new([1; 32], 60);
        let url = links.sign(
            "http://x/integrations/gmail/setup?user=usr_a",
            "gmail",
            "usr_a",
        );
        let (expires, sig) = params(&url);
        assert_eq!(links.verify("gmail", "usr_a", expires, &sig), Ok(()));
        assert_eq!(
            links.verify("gmail", "usr_b", expires, &sig),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            links.verify("slack", "usr_a", expires, &sig),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            links.verify("gmail", "usr_a", expires + 1, &sig),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            links.verify("gmail", "usr_a", expires, "zz"),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            SetupLinks::new([2; 32], 60).verify("gmail", "usr_a", expires, &sig),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn expired_links_are_refused() {
        let links = SetupLinks::new([1; 32], -10);
        let url = links.sign("http://x/s?user=u", "gmail", "u");
        let (expires, sig) = params(&url);
        assert_eq!(
            links.verify("gmail", "u", expires, &sig),
            Err(LinkError::Expired)
        );
    }
}
