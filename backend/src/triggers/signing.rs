//! Signed requests to `hmac` HTTP handlers: `X-Roost-Timestamp` (Unix
//! seconds) and `X-Roost-Signature: v1=<hex>`, the HMAC-SHA256 of
//! `"{timestamp}.{body}"` under the secret the handler's owner set. A
//! timestamp more than [`TOLERANCE_SECS`] from roost's clock is refused, so
//! a captured request cannot be replayed later than that, and within it a
//! signature is taken once (see `HttpHandlers::call`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a request's timestamp may be from roost's clock.
pub const TOLERANCE_SECS: i64 = 300;
/// Shortest and longest secret an owner may set, in bytes.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 32..=256;

/// Said when the handler has no secret yet.
pub(super) const NO_SECRET: &str =
    "this handler takes signed requests and its owner has set no signing secret yet";
const MISSING: &str = "this handler takes signed requests: send X-Roost-Timestamp (Unix seconds) and \
     X-Roost-Signature: v1=<hex HMAC-SHA256 of \"{timestamp}.{body}\">";
const STALE: &str =
    "the request's X-Roost-Timestamp is more than 5 minutes from the server's clock";
const WRONG: &str = "the request's signature does not match its timestamp and body";
/// Said of a signature seen before.
pub(super) const REPLAYED: &str =
    "this signed request was already received; sign each request anew, with its own timestamp";

/// Whether `secret` is one roost takes: 32 to 256 bytes, no control
/// characters.
pub(super) fn check_secret(secret: &str) -> Result<(), String> {
    if !SECRET_BYTES.contains(&secret.len()) || secret.chars().any(char::is_control) {
        return Err(format!(
            "a signing secret takes {} to {} bytes without control characters (for example 64 random hex digits)",
            SECRET_BYTES.start(),
            SECRET_BYTES.end()
        ));
    }
    Ok(())
}

/// The signature roost expects for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks a request's signature headers (names lower case) against
/// `secret` at `now` (Unix seconds); why not, in one line.
pub(super) fn verify(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> Result<(), &'static str> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
    };
    let (Some(timestamp), Some(signature)) =
        (header("x-roost-timestamp"), header("x-roost-signature"))
    else {
        return Err(MISSING);
    };
    let timestamp: i64 = timestamp.parse().map_err(|_| MISSING)?;
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(STALE);
    }
    // Several `v1=` entries may be sent (a caller moving to a new secret).
    let expected = mac(secret, timestamp, body);
    let matches = signature
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(|hex_sig| hex::decode(hex_sig).ok())
        .any(|sig| expected.clone().verify_slice(&sig).is_ok());
    if matches { Ok(()) } else { Err(WRONG) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn signed(timestamp: i64, signature: String) -> Vec<(String, String)> {
        vec![
            ("x-roost-timestamp".into(), timestamp.to_string()),
            ("x-roost-signature".into(), signature),
        ]
    }

    #[test]
    fn a_good_signature_passes_and_every_change_fails() {
        let now = 1_800_000_000;
        let good = signed(now, format!("v1={}", sign(SECRET, now, b"{}")));
        assert_eq!(verify(SECRET, &good, b"{}", now), Ok(()));
        assert_eq!(
            verify(SECRET, &good, b"{} ", now),
            Err(WRONG),
            "body changed"
        );
        let other = "fedcba9876543210fedcba9876543210";
        assert_eq!(verify(other, &good, b"{}", now), Err(WRONG), "wrong secret");
        assert_eq!(verify(SECRET, &good, b"{}", now + 301), Err(STALE));
        assert_eq!(verify(SECRET, &[], b"{}", now), Err(MISSING));
        let rotating = signed(now, format!("v1=00, v1={}", sign(SECRET, now, b"{}")));
        assert_eq!(verify(SECRET, &rotating, b"{}", now), Ok(()));
    }

    #[test]
    fn secrets_are_held_to_their_length() {
        assert!(check_secret(SECRET).is_ok());
        assert!(check_secret("short").is_err());
        assert!(check_secret(&"x".repeat(257)).is_err());
        assert!(check_secret(&format!("{SECRET}\n")).is_err());
    }
}
