use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::registry::Registry;

fn webhooks_of(id: &str) -> WebhookDef {
    Registry::load(None)
        .unwrap()
        .get(id)
        .unwrap()
        .webhooks
        .clone()
        .unwrap_or_else(|| panic!("{id} has no webhooks"))
}

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_vector_that_does_not_hold_is_caught_with_its_index() {
    let mut def = webhooks_of("stripe");
    def.test_vectors[0].body.push(' ');
    let (field, reason) = def.validate("stripe").unwrap_err();
    assert_eq!(field, "testVectors[0]");
    assert!(reason.contains("should verify"), "{reason}");

    let mut def = webhooks_of("stripe");
    def.test_vectors[0].event_type = Some("stripe.invoice.created".into());
    let (field, reason) = def.validate("stripe").unwrap_err();
    assert_eq!(field, "testVectors[0]");
    assert!(
        reason.contains("reads as event type `stripe.invoice.paid`"),
        "{reason}"
    );

    let mut def = webhooks_of("github");
    def.test_vectors.retain(|v| v.valid);
    let (field, _) = def.validate("github").unwrap_err();
    assert_eq!(field, "testVectors");
}

#[test]
fn unsafe_schemes_are_refused() {
    // A shared secret says nothing about whose delivery it is.
    let mut def = webhooks_of("slack");
    def.account = None;
    assert_eq!(def.validate("slack").unwrap_err().0, "account");
    // A timestamp outside the signed text can be replaced at will.
    let mut def = webhooks_of("slack");
    def.signature.signed = "v0:{body}".into();
    let (field, reason) = def.validate("slack").unwrap_err();
    assert_eq!(field, "signature.signed");
    assert!(reason.contains("add {timestamp}"), "{reason}");
    // {timestamp} with nowhere to read it from.
    let mut def = webhooks_of("github");
    def.signature.signed = "{timestamp}.{body}".into();
    assert!(
        def.validate("github")
            .unwrap_err()
            .1
            .contains("no timestamp")
    );
    let mut def = webhooks_of("stripe");
    def.signature.signature_key = None;
    assert_eq!(
        def.validate("stripe").unwrap_err().0,
        "signature.signatureKey"
    );
}

#[test]
fn signatures_are_read_as_the_scheme_says() {
    let def = webhooks_of("stripe");
    let vector = &def.test_vectors[0];
    let verify = |pairs: &[(&str, &str)]| {
        def.verify(
            &vector.secret,
            &headers(pairs),
            vector.body.as_bytes(),
            vector.now,
        )
    };
    let good = vector.headers["Stripe-Signature"].clone();
    assert_eq!(verify(&[("stripe-signature", &good)]), Ok(()));
    assert_eq!(verify(&[]), Err("no signature header"));
    let no_time = good.split(',').skip(1).collect::<Vec<_>>().join(",");
    assert_eq!(
        verify(&[("Stripe-Signature", &no_time)]),
        Err("no timestamp in the signature header")
    );
    assert_eq!(
        verify(&[("Stripe-Signature", "t=1700000000,v1=zz")]),
        Err("bad signature encoding")
    );
    let slack = webhooks_of("slack");
    let sig = slack.verify(
        "s",
        &headers(&[
            ("X-Slack-Signature", "v1=00"),
            ("X-Slack-Request-Timestamp", "1"),
        ]),
        b"{}",
        1,
    );
    assert_eq!(sig, Err("bad signature version"));
}

#[test]
fn deliveries_become_roost_event_types() {
    let shopify = webhooks_of("shopify");
    let read = |topic: &str, id: &str| {
        shopify.read(
            "shopify",
            &headers(&[("X-Shopify-Topic", topic), ("X-Shopify-Webhook-Id", id)]),
            br#"{"id":1}"#,
        )
    };
    match read("app/uninstalled", "w-1").unwrap() {
        Delivery::Event {
            event_type,
            delivery_id,
            payload,
            account,
        } => {
            assert_eq!(event_type, "shopify.app.uninstalled");
            assert_eq!(delivery_id, "w-1");
            assert_eq!(payload, json!({ "id": 1 }));
            assert_eq!(account, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read("orders create", "w-2"), Err(ReadError::EventType));
    assert!(matches!(
        read("orders/create", ""),
        Err(ReadError::DeliveryId(_))
    ));
    assert!(matches!(
        shopify.read("shopify", &headers(&[]), b"not json"),
        Err(ReadError::NotJson(_))
    ));

    let mut mapped = shopify.clone();
    mapped
        .event_type
        .map
        .insert("orders/create".into(), "order.created".into());
    assert_eq!(
        mapped.event_type("shopify", "orders/create"),
        "shopify.order.created"
    );

    let slack = webhooks_of("slack");
    let body = br#"{"type":"event_callback","team_id":"T1","api_app_id":"A1","event_id":"Ev1","event":{"type":"message","text":"hi"}}"#;
    match slack.read("slack", &headers(&[]), body).unwrap() {
        Delivery::Event {
            event_type,
            account,
            payload,
            ..
        } => {
            assert_eq!(event_type, "slack.message");
            assert_eq!(account, Some(("T1".into(), Some("A1".into()))));
            assert_eq!(payload["text"], "hi");
        }
        other => panic!("{other:?}"),
    }
    let check = br#"{"type":"url_verification","challenge":"abc"}"#;
    assert_eq!(
        slack.read("slack", &headers(&[]), check),
        Ok(Delivery::Challenge(json!("abc")))
    );
}
