//! The same store tests against SQLite and PostgreSQL.

mod support;

use roost::store::{NewScriptVersion, StoreError, TriggerRow};
use serde_json::json;
use support::{Backend, open_store};

fn version_of(user_id: &str, name: &str, triggers: Vec<TriggerRow>) -> NewScriptVersion {
    NewScriptVersion {
        user_id: user_id.into(),
        name: name.into(),
        component: b"\0asm-component-bytes".to_vec(),
        content_hash: "ab".repeat(32),
        metadata: json!({ "sdk_version": null, "handlers": [], "integrations": [] }),
        triggers,
        retries: None,
        limits: None,
    }
}

fn manual(handler: &str) -> TriggerRow {
    TriggerRow {
        handler: handler.into(),
        kind: "manual".into(),
        spec: String::new(),
        timezone: None,
    }
}

async fn users_are_unique_and_found_by_token_hash(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let ada = store.create_user("ada", "hash-1").await.unwrap();
    assert!(matches!(
        store.create_user("ada", "hash-2").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.user_by_token_hash("hash-1").await.unwrap(), Some(ada));
    assert_eq!(
        store.user_by_token_hash("hash-2").await.unwrap(),
        None,
        "the failed create left no token"
    );
}
on_both_stores!(users_are_unique_and_found_by_token_hash);

async fn versions_number_up_and_triggers_follow_the_current_one(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let user = store.create_user("ada", "h").await.unwrap();
    let v1 = store
        .create_script_version(&version_of(&user.id, "s", vec![manual("a")]))
        .await
        .unwrap();
    let v2 = store
        .create_script_version(&version_of(&user.id, "s", vec![manual("b")]))
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v1.script_id, v2.script_id);
    assert_eq!(store.triggers(&v1.script_id).await.unwrap(), [manual("b")]);
    let script = store
        .get_script(&user.id, &v1.script_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(script.current_version, 2);
}
on_both_stores!(versions_number_up_and_triggers_follow_the_current_one);

async fn a_failure_in_the_middle_of_a_deploy_leaves_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let user = store.create_user("ada", "h").await.unwrap();
    // Two triggers for one handler violate the triggers table's key after the
    // script and version rows are written: the whole deploy must roll back.
    let broken = version_of(&user.id, "s", vec![manual("same"), manual("same")]);
    assert!(store.create_script_version(&broken).await.is_err());
    assert!(store.list_scripts(&user.id).await.unwrap().is_empty());

    // And for an existing script, the failed version leaves the old one current.
    let v1 = store
        .create_script_version(&version_of(&user.id, "s", vec![manual("a")]))
        .await
        .unwrap();
    assert!(
        store
            .create_script_version(&version_of(&user.id, "s", vec![manual("x"), manual("x")]))
            .await
            .is_err()
    );
    let versions = store.list_versions(&user.id, &v1.script_id).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(store.triggers(&v1.script_id).await.unwrap(), [manual("a")]);
    assert_eq!(
        store
            .get_script(&user.id, &v1.script_id)
            .await
            .unwrap()
            .unwrap()
            .current_version,
        1
    );
}
on_both_stores!(a_failure_in_the_middle_of_a_deploy_leaves_nothing);

async fn credential_rows_upsert_and_stay_per_user(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path()).await;
    let ada = store.create_user("ada", "h1").await.unwrap();
    let bob = store.create_user("bob", "h2").await.unwrap();
    let row = |user: &str, nonce: u8| roost::store::CredentialRow {
        user_id: user.into(),
        integration_id: "openai".into(),
        cred_key: "api_key".into(),
        key_id: "k1".into(),
        nonce: vec![nonce; 12],
        ciphertext: vec![1, 2, 3],
        placement: None,
        status: "connected".into(),
        updated_at: 1,
        expires_at: Some(5),
    };
    store.put_credentials(&[row(&ada.id, 1)]).await.unwrap();
    store
        .put_credentials(&[row(&ada.id, 2), row(&bob.id, 3)])
        .await
        .unwrap();
    let adas = store.credentials(&ada.id, None).await.unwrap();
    assert_eq!(adas.len(), 1);
    assert_eq!(adas[0].nonce, vec![2; 12]);
    assert_eq!(
        store
            .credentials(&ada.id, Some("gmail"))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        store.delete_credentials(&ada.id, "openai").await.unwrap(),
        1
    );
    assert_eq!(
        store
            .credentials(&bob.id, Some("openai"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.all_credentials().await.unwrap().len(), 1);
}
on_both_stores!(credential_rows_upsert_and_stay_per_user);
