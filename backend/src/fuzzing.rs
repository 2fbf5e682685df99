//! Entry points for the fuzz targets in `fuzz/` and their regression tests:
//! each feeds arbitrary bytes to a parser that faces users, through the same
//! code the server runs. None may panic, whatever the input; the invariants
//! each checks on top are noted. Not a stable API.

use base64::Engine as _;

/// Component metadata: the custom-section reader deploy and `roost inspect`
/// use on uploaded wasm.
pub fn metadata(data: &[u8]) {
    if let Ok(Some(metadata)) = roost_sandbox::metadata::read(data) {
        // What comes out is sorted and deduplicated, as documented.
        let mut sorted = metadata.integrations.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, metadata.integrations);
    }
}

/// The deploy body: JSON, then the base64 component, the name and the
/// metadata agreement check.
pub fn deploy_body(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<crate::http::scripts::DeployBody>(data) else {
        return;
    };
    let _ = crate::deploy::check_name(&body.name);
    if let Ok(component) = base64::engine::general_purpose::STANDARD.decode(body.component.trim()) {
        let _ = crate::deploy::resolve_metadata(&component, &body.metadata);
    }
}

/// An integration definition file, parsed and validated as at startup.
pub fn definition(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(definition) = crate::registry::parse("fuzz.json", text) {
        // A definition that loads renders its docs.
        let _ = crate::registry::render_docs(&definition);
    }
}

/// The event envelope of `POST /v1/events/{type}`: the first line is the
/// path's type, the rest the body.
pub fn event_envelope(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (event_type, body) = text.split_once('\n').unwrap_or((&text, ""));
    let Ok(envelope) = serde_json::from_str::<crate::http::events::Envelope>(body) else {
        return;
    };
    if let Ok(event) =
        crate::http::events::event_from("usr_fuzz".into(), event_type.to_string(), envelope)
    {
        // Only valid types and bounded ids get through.
        assert!(crate::triggers::valid_type(&event.event_type));
        assert!(!event.event_id.is_empty() && event.event_id.len() <= 200);
    }
}

/// The webhook verifier and reader, with Slack's definition: timestamp,
/// signature and body come from the input (split on the first two
/// newlines); the secret is fixed.
pub fn slack_signature(data: &[u8]) {
    const SECRET: &str = "fuzz-signing-secret";
    static SLACK: std::sync::LazyLock<crate::registry::WebhookDef> =
        std::sync::LazyLock::new(|| {
            let registry =
                crate::registry::Registry::load(None).expect("built-in definitions load");
            let slack = registry.get("slack").expect("slack is built in");
            slack.webhooks.clone().expect("slack has webhooks")
        });
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let timestamp = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let signature = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let now = timestamp.parse::<i64>().unwrap_or(0);
    let headers: std::collections::BTreeMap<String, String> = [
        ("X-Slack-Request-Timestamp".to_string(), timestamp.clone()),
        ("X-Slack-Signature".to_string(), signature.clone()),
    ]
    .into();
    if SLACK.verify(SECRET, &headers, body, now).is_ok() {
        // Accepting means the signature really is the HMAC of this request.
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("v0:{timestamp}:").as_bytes());
        mac.update(body);
        let expected = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature.eq_ignore_ascii_case(&expected));
        // Reading what verified never panics, and yields only valid types.
        if let Ok(crate::registry::Delivery::Event { event_type, .. }) =
            SLACK.read("slack", &headers, body)
        {
            assert!(crate::triggers::valid_type(&event_type));
        }
    }
}

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The targets by name, for the regression tests.
pub const TARGETS: &[(&str, Target)] = &[
    ("metadata", metadata),
    ("deploy_body", deploy_body),
    ("definition", definition),
    ("event_envelope", event_envelope),
    ("slack_signature", slack_signature),
];
