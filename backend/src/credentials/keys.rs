//! Master keys: the AES-256 keys credentials are encrypted with.
//!
//! Sources, in order: `ROOST_MASTER_KEY` (base64 of 32 bytes; older keys in
//! `ROOST_MASTER_KEY_OLD`, comma separated, stay usable for decryption), or a
//! key file in the data directory. The embedded default creates the key file
//! (mode 0600) on first start and logs that it did.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::CredentialError;

/// A set of master keys: one current key for encryption, all of them for
/// decryption.
#[derive(Clone)]
pub struct MasterKeys {
    current: String,
    keys: BTreeMap<String, Key<Aes256Gcm>>,
    file: Option<PathBuf>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    current: String,
    keys: BTreeMap<String, String>,
}

impl MasterKeys {
    /// Loads the keys from the environment or the key file, creating the
    /// file when neither exists.
    pub fn load(
        env_key: Option<&str>,
        env_old: Option<&str>,
        key_file: &Path,
    ) -> Result<Self, CredentialError> {
        if let Some(encoded) = env_key {
            let key = decode_key(encoded, "ROOST_MASTER_KEY")?;
            let current = key_id_of(&key);
            let mut keys = BTreeMap::from([(current.clone(), key)]);
            for old in env_old
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let key = decode_key(old, "ROOST_MASTER_KEY_OLD")?;
                keys.insert(key_id_of(&key), key);
            }
            return Ok(Self {
                current,
                keys,
                file: None,
            });
        }
        if key_file.exists() {
            return Self::read_file(key_file);
        }
        let key = Aes256Gcm::generate_key(OsRng);
        let current = key_id_of(&key);
        let keys = Self {
            current: current.clone(),
            keys: BTreeMap::from([(current, key)]),
            file: Some(key_file.into()),
        };
        keys.write_file()?;
        tracing::warn!(
            path = %key_file.display(),
            "created a new master key file (mode 0600); back it up: without it stored credentials cannot be decrypted"
        );
        Ok(keys)
    }

    fn read_file(path: &Path) -> Result<Self, CredentialError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CredentialError::KeySource(format!("reading {}: {e}", path.display())))?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| {
            CredentialError::KeySource(format!("{} is not a roost key file: {e}", path.display()))
        })?;
        let mut keys = BTreeMap::new();
        for (id, encoded) in &file.keys {
            keys.insert(
                id.clone(),
                decode_key(encoded, &format!("key `{id}` in {}", path.display()))?,
            );
        }
        if !keys.contains_key(&file.current) {
            return Err(CredentialError::KeySource(format!(
                "{}: current key `{}` is not in the file",
                path.display(),
                file.current
            )));
        }
        Ok(Self {
            current: file.current,
            keys,
            file: Some(path.into()),
        })
    }

    fn write_file(&self) -> Result<(), CredentialError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let file = KeyFile {
            current: self.current.clone(),
            keys: self
                .keys
                .iter()
                .map(|(id, key)| (id.clone(), B64.encode(key)))
                .collect(),
        };
        let text = serde_json::to_string_pretty(&file).expect("key file serialises");
        write_private(path, text.as_bytes())
            .map_err(|e| CredentialError::KeySource(format!("writing {}: {e}", path.display())))
    }

    /// Id of the key new ciphertexts use.
    pub fn current_id(&self) -> &str {
        &self.current
    }

    pub(super) fn current_key(&self) -> &Key<Aes256Gcm> {
        &self.keys[&self.current]
    }

    pub(super) fn key(&self, id: &str) -> Option<&Key<Aes256Gcm>> {
        self.keys.get(id)
    }

    /// A secret for another purpose (signing setup links…), derived from
    /// the current master key so there is no second secret to manage.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(self.current_key())
            .expect("HMAC takes any key length");
        mac.update(b"roost-derived-secret|");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Ids of every known key.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    /// Whether these keys live in a key file (and so can be rotated in place).
    pub fn is_file_backed(&self) -> bool {
        self.file.is_some()
    }

    /// Adds a fresh key, makes it current and saves the file (old keys stay
    /// for decryption). Only for file-backed keys.
    pub fn add_new_current(&mut self) -> Result<String, CredentialError> {
        if self.file.is_none() {
            return Err(CredentialError::KeySource(
                "keys come from ROOST_MASTER_KEY: set the new key there and the old one in \
                 ROOST_MASTER_KEY_OLD, then run the rotation again"
                    .into(),
            ));
        }
        let key = Aes256Gcm::generate_key(OsRng);
        let id = key_id_of(&key);
        self.keys.insert(id.clone(), key);
        self.current = id.clone();
        self.write_file()?;
        Ok(id)
    }

    /// Forgets every key but the current one and saves the file. Called once
    /// no row is encrypted with the old keys any more.
    pub fn retire_old(&mut self) -> Result<Vec<String>, CredentialError> {
        let old: Vec<String> = self
            .keys
            .keys()
            .filter(|id| **id != self.current)
            .cloned()
            .collect();
        if self.file.is_some() {
            self.keys.retain(|id, _| *id == self.current);
            self.write_file()?;
        }
        Ok(old)
    }
}

/// A short, stable id derived from the key (not reversible to it).
fn key_id_of(key: &Key<Aes256Gcm>) -> String {
    let digest = Sha256::digest([b"roost-key-id:".as_slice(), key.as_slice()].concat());
    format!("k{}", &hex::encode(digest)[..12])
}

fn decode_key(encoded: &str, source: &str) -> Result<Key<Aes256Gcm>, CredentialError> {
    let bytes = B64
        .decode(encoded.trim())
        .map_err(|_| CredentialError::KeySource(format!("{source} is not valid base64")))?;
    if bytes.len() != 32 {
        return Err(CredentialError::KeySource(format!(
            "{source} must decode to 32 bytes (AES-256), got {}",
            bytes.len()
        )));
    }
    Ok(*Key::<Aes256Gcm>::from_slice(&bytes))
}

/// Writes a file readable by its owner only, atomically.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
