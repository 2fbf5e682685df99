//! Setup links are signed:
//! `…/integrations/{id}/setup?user=…&link=…&expires=…&sig=…`. The signature
//! (HMAC-SHA256 with a key derived from the master key) covers the
//! integration, the user, the link's own random id and the expiry, so nobody
//! can craft a link that connects credentials into someone else's account,
//! old links die, and no two links are alike. A link is spent by its id, in
//! the transaction that stores the credential it connected (see the store's
//! `put_credentials_through_link`).

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

    fn signature(
        &self,
        integration: &str,
        user_id: &str,
        link: &str,
        expires: i64,
    ) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("roost-setup|v2|{integration}|{user_id}|{link}|{expires}").as_bytes());
        mac
    }

    /// Appends a new link id, the expiry and the signature to a setup URL
    /// rendered from the template.
    pub fn sign(&self, url: &str, integration: &str, user_id: &str) -> String {
        let expires = now_secs() + self.ttl_secs;
        let link = crate::store::new_id("lnk");
        let sig = hex::encode(
            self.signature(integration, user_id, &link, expires)
                .finalize()
                .into_bytes(),
        );
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}link={link}&expires={expires}&sig={sig}")
    }

    /// Checks a link's parameters. The signature is compared as decoded
    /// bytes, in constant time; a link is spent by its id, so how its
    /// signature is spelled (upper or lower case hex) changes nothing.
    pub fn verify(
        &self,
        integration: &str,
        user_id: &str,
        link: &str,
        expires: i64,
        sig: &str,
    ) -> Result<(), LinkError> {
        let sig = hex::decode(sig).map_err(|_| LinkError::Invalid)?;
        self.signature(integration, user_id, link, expires)
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

    fn params(url: &str) -> (String, i64, String) {
        let query = url.split_once('?').unwrap().1;
        let get = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_string()
        };
        (get("link"), get("expires").parse().unwrap(), get("sig"))
    }

    #[test]
    fn signed_links_verify_only_for_their_user_integration_and_id() {
        let links = SetupLinks::new([1; 32], 60);
        let url = links.sign(
            "http://x/integrations/gmail/setup?user=usr_a",
            "gmail",
            "usr_a",
        );
        let (link, expires, sig) = params(&url);
        assert_eq!(links.verify("gmail", "usr_a", &link, expires, &sig), Ok(()));
        for (integration, user, id, at) in [
            ("gmail", "usr_b", link.as_str(), expires),
            ("slack", "usr_a", link.as_str(), expires),
            ("gmail", "usr_a", "lnk_other", expires),
            ("gmail", "usr_a", link.as_str(), expires + 1),
        ] {
            assert_eq!(
                links.verify(integration, user, id, at, &sig),
                Err(LinkError::Invalid),
                "{integration} {user} {id} {at}"
            );
        }
        assert_eq!(
            links.verify("gmail", "usr_a", &link, expires, "zz"),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            SetupLinks::new([2; 32], 60).verify("gmail", "usr_a", &link, expires, &sig),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn two_links_for_the_same_user_and_second_differ() {
        let links = SetupLinks::new([1; 32], 60);
        let first = links.sign("http://x/s?user=u", "gmail", "u");
        let second = links.sign("http://x/s?user=u", "gmail", "u");
        assert_ne!(params(&first).0, params(&second).0);
        assert_ne!(params(&first).2, params(&second).2);
    }

    #[test]
    fn expired_links_are_refused() {
        let links = SetupLinks::new([1; 32], -10);
        let url = links.sign("http://x/s?user=u", "gmail", "u");
        let (link, expires, sig) = params(&url);
        assert_eq!(
            links.verify("gmail", "u", &link, expires, &sig),
            Err(LinkError::Expired)
        );
    }
}
