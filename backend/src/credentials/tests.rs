use super::*;
use crate::store::Store;

async fn setup() -> (tempfile::TempDir, Arc<dyn Store>, MasterKeys, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let store = crate::store::connect(&url).await.unwrap();
    let keys = MasterKeys::load(None, None, &dir.path().join("master.key")).unwrap();
    let user = store.create_user("ada", "hash-ada").await.unwrap();
    (dir, store, keys, user.id)
}

fn seal_for(
    keys: &MasterKeys,
    user: &str,
    integration: &str,
    key: &str,
    value: &str,
) -> crate::store::CredentialRow {
    cipher::seal(
        keys,
        &Slot {
            user_id: user,
            integration_id: integration,
            cred_key: key,
        },
        value,
        None,
    )
}

#[tokio::test]
async fn values_round_trip_into_the_spec_env_vars() {
    let (_dir, store, keys, user) = setup().await;
    store
        .put_credentials(&[
            seal_for(&keys, &user, "gmail", "access_token", "ya29.token"),
            seal_for(&keys, &user, "gmail", "refresh_token", "1//refresh"),
            seal_for(&keys, &user, "slack", "access_token", "xoxb-1"),
        ])
        .await
        .unwrap();
    let service = CredentialService::new(store, keys);
    let registry = Registry::load(None).unwrap();
    let env = service
        .get_env_for_execution(&user, &registry, &["gmail".into(), "slack".into()])
        .await
        .unwrap();
    assert_eq!(env["GMAIL_ACCESS_TOKEN"], "ya29.token");
    assert_eq!(env["GMAIL_REFRESH_TOKEN"], "1//refresh");
    assert_eq!(env["SLACK_ACCESS_TOKEN"], "xoxb-1");
    assert_eq!(env.len(), 3);

    let err = service
        .get_env_for_execution(&user, &registry, &["sendgrid".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, CredentialError::Missing(ref m) if m == &["sendgrid.api_key"]),
        "{err}"
    );
}

#[tokio::test]
async fn ciphertext_is_fresh_each_write_and_never_the_plaintext() {
    let (_dir, _store, keys, user) = setup().await;
    let a = seal_for(&keys, &user, "sendgrid", "api_key", "SG.secret-value");
    let b = seal_for(&keys, &user, "sendgrid", "api_key", "SG.secret-value");
    assert_ne!(a.nonce, b.nonce);
    assert_ne!(a.ciphertext, b.ciphertext);
    assert!(!a.ciphertext.windows(6).any(|w| w == b"secret"));
    assert!(!format!("{a:?}").contains("secret"));
}

#[tokio::test]
async fn tampered_ciphertext_fails_to_decrypt() {
    let (_dir, _store, keys, user) = setup().await;
    let mut row = seal_for(&keys, &user, "sendgrid", "api_key", "SG.value");
    row.ciphertext[0] ^= 1;
    let err = cipher::open(&keys, &row).unwrap_err();
    assert!(matches!(err, CredentialError::Undecryptable { .. }));
    assert!(!err.to_string().contains("SG.value"));
}

#[tokio::test]
async fn a_row_moved_to_another_user_or_integration_fails_to_decrypt() {
    let (_dir, _store, keys, user) = setup().await;
    let row = seal_for(&keys, &user, "sendgrid", "api_key", "SG.value");
    let mut other_user = row.clone();
    other_user.user_id = "usr_mallory".into();
    assert!(cipher::open(&keys, &other_user).is_err());
    let mut other_integration = row.clone();
    other_integration.integration_id = "openai".into();
    assert!(cipher::open(&keys, &other_integration).is_err());
    let mut other_key_id = row.clone();
    other_key_id.key_id = "k000000000000".into();
    assert!(cipher::open(&keys, &other_key_id).is_err());
    assert_eq!(cipher::open(&keys, &row).unwrap(), "SG.value");
}

#[tokio::test]
async fn a_different_master_key_cannot_decrypt() {
    let (dir, _store, keys, user) = setup().await;
    let row = seal_for(&keys, &user, "sendgrid", "api_key", "SG.value");
    let other = MasterKeys::load(None, None, &dir.path().join("other.key")).unwrap();
    assert!(cipher::open(&other, &row).is_err());
}

#[tokio::test]
async fn rotation_reencrypts_every_row_and_retires_the_old_key() {
    let (dir, store, mut keys, user) = setup().await;
    store
        .put_credentials(&[seal_for(&keys, &user, "sendgrid", "api_key", "SG.value")])
        .await
        .unwrap();
    let old_id = keys.current_id().to_string();

    let new_id = keys.add_new_current().unwrap();
    assert_ne!(old_id, new_id);
    // Until the rows are rewritten, the old key still decrypts them.
    let row = &store.all_credentials().await.unwrap()[0];
    assert_eq!(row.key_id, old_id);
    assert_eq!(cipher::open(&keys, row).unwrap(), "SG.value");

    assert_eq!(reencrypt_all(store.as_ref(), &keys).await.unwrap(), 1);
    assert_eq!(keys.retire_old().unwrap(), vec![old_id.clone()]);
    let reloaded = MasterKeys::load(None, None, &dir.path().join("master.key")).unwrap();
    assert_eq!(reloaded.key_ids(), vec![new_id.clone()]);
    let row = &store.all_credentials().await.unwrap()[0];
    assert_eq!(row.key_id, new_id);
    assert_eq!(cipher::open(&reloaded, row).unwrap(), "SG.value");
    // The owner's audit trail records the rotation, not the value.
    let filter = crate::store::AuditFilter {
        limit: 10,
        ..Default::default()
    };
    let audit = store.list_audit(&user, &filter).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, crate::audit::action::KEY_ROTATED);
    assert_eq!(audit[0].integration.as_deref(), Some("sendgrid"));
    assert!(!format!("{audit:?}").contains("SG.value"));
}

/// An HTTP handler's signing secret is resealed with the credentials, so
/// it still opens once the old key is retired; sealed for one handler, it
/// does not open as another's.
#[tokio::test]
async fn rotation_reseals_http_handler_secrets() {
    let (_dir, store, mut keys, user) = setup().await;
    let trigger = crate::store::TriggerRow {
        handler: "signed".into(),
        kind: crate::store::TriggerKind::Http,
        spec: r#"{"method":"POST","path":"/signed","access":"hmac"}"#.into(),
        timezone: None,
        flow: None,
    };
    let version = store
        .create_script_version(&crate::store::NewScriptVersion {
            user_id: user.clone(),
            name: "s".into(),
            component: b"\0asm".to_vec(),
            content_hash: "ab".repeat(32),
            metadata: serde_json::json!({ "handlers": [], "integrations": [] }),
            triggers: vec![trigger],
            retries: None,
            limits: None,
            caps: Default::default(),
        })
        .await
        .unwrap();
    let script = version.script_id;
    let secret = "a-signing-secret-of-at-least-32-bytes";
    let sealed = cipher::seal_handler_secret(&keys, &user, &script, "signed", secret);
    assert!(cipher::open_handler_secret(&keys, &user, &script, "other", &sealed).is_err());
    assert!(
        store
            .set_http_secret(&user, &script, "signed", &sealed)
            .await
            .unwrap()
    );
    let old_id = keys.current_id().to_string();
    keys.add_new_current().unwrap();
    assert_eq!(reencrypt_all(store.as_ref(), &keys).await.unwrap(), 1);
    keys.retire_old().unwrap();
    let stored = store.sealed_http_secrets().await.unwrap();
    let resealed = stored[0].secret.as_ref().unwrap();
    assert_ne!(resealed.key_id, old_id);
    let opened = cipher::open_handler_secret(&keys, &user, &script, "signed", resealed).unwrap();
    assert_eq!(opened, secret);
}

#[cfg(unix)]
#[test]
fn the_key_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    MasterKeys::load(None, None, &path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn env_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unused.key");
    assert!(MasterKeys::load(Some("not base64!"), None, &path).is_err());
    assert!(MasterKeys::load(Some("c2hvcnQ="), None, &path).is_err());
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    let keys = MasterKeys::load(Some(&key), None, &path).unwrap();
    assert!(!keys.is_file_backed());
    assert!(!path.exists());
}
