//! Credential values never leave a run in clear: the captured stdout and
//! stderr, the run's error and its outbox messages are masked before they
//! are stored or returned. The whole capture is masked at once, so a value
//! the script wrote in two pieces is caught like one written whole; a value
//! cut off by the output cap is masked as far as it got.
//!
//! Only exact values are recognised: a script that encodes a secret (base64,
//! reversed, one character per line) before printing it is not stopped by
//! this, which is why values are also kept out of logs and errors by
//! construction. Masking is the net under that, not the wall.

use std::sync::{Arc, RwLock};

/// What replaces a credential value.
pub const MARKER: &str = "[roost: masked credential]";

/// Values shorter than this are not masked: masking "a" or "1" would
/// shred the output and protect nothing.
const MIN_LEN: usize = crate::credentials::MIN_SECRET_BYTES;

/// The secrets of one run. Clones share them: a value the run comes to
/// hold later (a token refreshed mid-run) is masked by every clone.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so a secret containing another is masked whole.
    secrets: Arc<RwLock<Vec<Vec<u8>>>>,
}

impl Masker {
    /// A masker for these values.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let masker = Self::default();
        masker.add(values);
        masker
    }

    /// Masks these values too, from now on.
    pub fn add<'a>(&self, values: impl IntoIterator<Item = &'a str>) {
        let mut secrets = self.secrets.write().unwrap_or_else(|p| p.into_inner());
        secrets.extend(
            values
                .into_iter()
                .filter(|v| v.len() >= MIN_LEN)
                .map(|v| v.as_bytes().to_vec()),
        );
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
    }

    /// Whether there is anything to mask.
    pub fn is_empty(&self) -> bool {
        self.secrets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// `bytes` with every secret replaced. With `cut` (the capture hit its
    /// cap), a secret's beginning at the very end is masked too.
    pub fn mask(&self, bytes: &[u8], cut: bool) -> Vec<u8> {
        let secrets = self.secrets.read().unwrap_or_else(|p| p.into_inner());
        if secrets.is_empty() {
            return bytes.to_vec();
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        'scan: while i < bytes.len() {
            for secret in secrets.iter() {
                if bytes[i..].starts_with(secret) {
                    out.extend_from_slice(MARKER.as_bytes());
                    i += secret.len();
                    continue 'scan;
                }
            }
            if cut {
                let rest = &bytes[i..];
                if rest.len() >= 4
                    && secrets
                        .iter()
                        .any(|s| rest.len() < s.len() && s.starts_with(rest))
                {
                    out.extend_from_slice(MARKER.as_bytes());
                    break;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        out
    }

    /// A text with every secret replaced.
    pub fn mask_str(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.mask(text.as_bytes(), false)).into_owned()
    }

    /// `value` with every secret masked in every string, keys included;
    /// masking the JSON text would miss a secret that JSON escapes.
    pub fn mask_json(&self, value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(text) => Value::String(self.mask_str(&text)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.mask_json(v)).collect())
            }
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (self.mask_str(&k), self.mask_json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_whole_values_overlaps_and_cut_ends() {
        let masker = Masker::new(["SG.secret-key", "SG.secret-key-longer", "abc"]);
        let masked = masker.mask(b"key=SG.secret-key-longer and SG.secret-key; abc", false);
        assert_eq!(
            String::from_utf8(masked).unwrap(),
            format!("key={MARKER} and {MARKER}; abc")
        );
        // Cut by the output cap in the middle of a value.
        let masked = masker.mask(b"token: SG.secr", true);
        assert_eq!(
            String::from_utf8(masked).unwrap(),
            format!("token: {MARKER}")
        );
        // Not cut: a prefix is just text.
        assert_eq!(masker.mask(b"SG.secr", false), b"SG.secr");
        assert_eq!(Masker::new(["short"]).mask(b"short", false), b"short");
    }

    #[test]
    fn a_value_added_later_is_masked_by_every_clone() {
        let masker = Masker::new(["old-token-1"]);
        let clone = masker.clone();
        assert_eq!(clone.mask_str("new-token-2"), "new-token-2");
        masker.add(["new-token-2"]);
        assert_eq!(
            clone.mask_str("new-token-2 old-token-1"),
            format!("{MARKER} {MARKER}")
        );
    }
}
