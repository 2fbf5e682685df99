//! AES-256-GCM for credential values. Each write gets a fresh random 96-bit
//! nonce; the associated data `v1|user|integration|key|key_id` binds the
//! ciphertext to its row, so a row copied onto another (another user, another
//! integration) fails to decrypt instead of leaking.

use aes_gcm::aead::{Aead, AeadCore, OsRng, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};

use super::CredentialError;
use super::keys::MasterKeys;
use crate::store::{CredentialRow, now_millis};

/// Where a value sits: the row's identity, part of the associated data.
pub(crate) struct Slot<'a> {
    /// Owner.
    pub(crate) user_id: &'a str,
    /// Integration.
    pub(crate) integration_id: &'a str,
    /// Credential key.
    pub(crate) cred_key: &'a str,
}

fn associated_data(slot: &Slot<'_>, key_id: &str) -> Vec<u8> {
    format!(
        "v1|{}|{}|{}|{}",
        slot.user_id, slot.integration_id, slot.cred_key, key_id
    )
    .into_bytes()
}

/// Encrypts `plaintext` for `slot` under the current master key.
pub(crate) fn seal(
    keys: &MasterKeys,
    slot: &Slot<'_>,
    plaintext: &str,
    placement: Option<String>,
) -> CredentialRow {
    let key_id = keys.current_id().to_string();
    let cipher = Aes256Gcm::new(keys.current_key());
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = associated_data(slot, &key_id);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext.as_bytes(),
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption of a short value cannot fail");
    CredentialRow {
        user_id: slot.user_id.into(),
        integration_id: slot.integration_id.into(),
        cred_key: slot.cred_key.into(),
        key_id,
        nonce: nonce.to_vec(),
        ciphertext,
        placement,
        status: crate::store::CredentialStatus::Connected,
        updated_at: now_millis(),
        expires_at: None,
    }
}

/// Decrypts a row with whichever known key encrypted it. Fails, without
/// saying anything about the value, when the row was tampered with, moved,
/// or encrypted with an unknown key.
pub(crate) fn open(keys: &MasterKeys, row: &CredentialRow) -> Result<String, CredentialError> {
    let undecryptable = || CredentialError::Undecryptable {
        integration: row.integration_id.clone(),
        key: row.cred_key.clone(),
    };
    let key = keys.key(&row.key_id).ok_or_else(undecryptable)?;
    if row.nonce.len() != 12 {
        return Err(undecryptable());
    }
    let slot = Slot {
        user_id: &row.user_id,
        integration_id: &row.integration_id,
        cred_key: &row.cred_key,
    };
    let aad = associated_data(&slot, &row.key_id);
    let plaintext = Aes256Gcm::new(key)
        .decrypt(
            Nonce::from_slice(&row.nonce),
            Payload {
                msg: &row.ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| undecryptable())?;
    String::from_utf8(plaintext).map_err(|_| undecryptable())
}

/// Re-encrypts a row under the current key (rotation).
pub(super) fn reseal(
    keys: &MasterKeys,
    row: &CredentialRow,
) -> Result<CredentialRow, CredentialError> {
    let plaintext = open(keys, row)?;
    let slot = Slot {
        user_id: &row.user_id,
        integration_id: &row.integration_id,
        cred_key: &row.cred_key,
    };
    let mut fresh = seal(keys, &slot, &plaintext, row.placement.clone());
    fresh.status = row.status;
    fresh.updated_at = row.updated_at;
    fresh.expires_at = row.expires_at;
    Ok(fresh)
}

/// The slot of an HTTP handler's signing secret: its own "integration", so
/// a sealed secret cannot be passed off as a credential or the other way.
const HANDLER_SECRET: &str = "roost.http-handler";

/// Seals an HTTP handler's signing secret, bound to its user, script and
/// handler.
pub(crate) fn seal_handler_secret(
    keys: &MasterKeys,
    user_id: &str,
    script_id: &str,
    handler: &str,
    secret: &str,
) -> crate::store::SealedSecret {
    let cred_key = format!("{script_id}/{handler}");
    let slot = Slot {
        user_id,
        integration_id: HANDLER_SECRET,
        cred_key: &cred_key,
    };
    let row = seal(keys, &slot, secret, None);
    crate::store::SealedSecret {
        key_id: row.key_id,
        nonce: row.nonce,
        ciphertext: row.ciphertext,
    }
}

/// Opens what [`seal_handler_secret`] sealed for the same user, script and
/// handler.
pub(crate) fn open_handler_secret(
    keys: &MasterKeys,
    user_id: &str,
    script_id: &str,
    handler: &str,
    sealed: &crate::store::SealedSecret,
) -> Result<String, CredentialError> {
    let row = CredentialRow {
        user_id: user_id.to_string(),
        integration_id: HANDLER_SECRET.to_string(),
        cred_key: format!("{script_id}/{handler}"),
        key_id: sealed.key_id.clone(),
        nonce: sealed.nonce.clone(),
        ciphertext: sealed.ciphertext.clone(),
        placement: None,
        status: crate::store::CredentialStatus::Connected,
        updated_at: 0,
        expires_at: None,
    };
    open(keys, &row)
}
