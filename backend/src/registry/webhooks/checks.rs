//! A `webhooks` section's consistency, and its test vectors.

use super::{Delivery, HeaderFormat, SecretSource, ValueSource, WebhookDef};

impl WebhookDef {
    /// Checks the section's consistency, then its test vectors. The error
    /// is (field under `webhooks`, reason).
    pub fn validate(&self, integration: &str) -> Result<(), (String, String)> {
        let fail = |field: &str, reason: String| Err((field.to_string(), reason));
        let sig = &self.signature;
        if !is_header_name(&sig.header) {
            return fail(
                "signature.header",
                format!("`{}` is not a header name", sig.header),
            );
        }
        let has_timestamp = match sig.format {
            HeaderFormat::Plain => {
                if sig.timestamp_key.is_some() || sig.signature_key.is_some() {
                    return fail(
                        "signature.format",
                        "timestampKey and signatureKey belong to a keyValue header".into(),
                    );
                }
                if let Some(name) = &sig.timestamp_header
                    && !is_header_name(name)
                {
                    return fail(
                        "signature.timestampHeader",
                        format!("`{name}` is not a header name"),
                    );
                }
                sig.timestamp_header.is_some()
            }
            HeaderFormat::KeyValue => {
                if sig.signature_key.as_deref().is_none_or(str::is_empty) {
                    return fail(
                        "signature.signatureKey",
                        "a keyValue header needs the key of its signatures".into(),
                    );
                }
                if sig.prefix.is_some() || sig.timestamp_header.is_some() {
                    return fail(
                        "signature.format",
                        "prefix and timestampHeader belong to a plain header".into(),
                    );
                }
                sig.timestamp_key.is_some()
            }
        };
        if sig.signed.matches("{body}").count() != 1 {
            return fail(
                "signature.signed",
                "must contain {body} exactly once".into(),
            );
        }
        for placeholder in crate::registry::placeholders(&sig.signed) {
            let known = placeholder == "body" || (placeholder == "timestamp" && has_timestamp);
            if !known {
                return fail(
                    "signature.signed",
                    format!(
                        "`{{{placeholder}}}` is not {{body}}{}",
                        if has_timestamp {
                            " or {timestamp}"
                        } else {
                            " (no timestamp is configured)"
                        }
                    ),
                );
            }
        }
        if has_timestamp && !sig.signed.contains("{timestamp}") {
            return fail(
                "signature.signed",
                "a timestamp that is not signed can be changed by anyone: add {timestamp}".into(),
            );
        }
        if has_timestamp && !(1..=3600).contains(&sig.tolerance_seconds) {
            return fail(
                "signature.toleranceSeconds",
                "must be 1 to 3600 seconds".into(),
            );
        }
        if self.secret == SecretSource::Server && self.account.is_none() {
            return fail(
                "account",
                "a server secret is shared by every user, so the delivery must name its \
                 account to tell whose it is"
                    .into(),
            );
        }
        let sources = [
            ("eventType.from", Some(&self.event_type.from)),
            ("deliveryId", Some(&self.delivery_id)),
            ("account.id", self.account.as_ref().map(|a| &a.id)),
            (
                "account.app",
                self.account.as_ref().and_then(|a| a.app.as_ref()),
            ),
        ];
        for (field, source) in sources {
            match source {
                Some(ValueSource::Header(name)) if !is_header_name(name) => {
                    return fail(field, format!("`{name}` is not a header name"));
                }
                Some(ValueSource::Field(pointer)) if !pointer.starts_with('/') => {
                    return fail(field, format!("`{pointer}` is not a JSON Pointer"));
                }
                _ => {}
            }
        }
        let pointers = [
            ("payload", self.payload.as_deref()),
            (
                "challenge.field",
                self.challenge.as_ref().map(|c| c.field.as_str()),
            ),
            (
                "challenge.answer",
                self.challenge.as_ref().map(|c| c.answer.as_str()),
            ),
        ];
        for (field, pointer) in pointers {
            if let Some(pointer) = pointer
                && !pointer.starts_with('/')
            {
                return fail(field, format!("`{pointer}` is not a JSON Pointer"));
            }
        }
        for (raw, mapped) in &self.event_type.map {
            if !crate::triggers::valid_type(&format!("{integration}.{mapped}")) {
                return fail(
                    &format!("eventType.map.{raw}"),
                    format!("`{mapped}` does not make a valid event type"),
                );
            }
        }
        self.check_vectors(integration)
    }

    /// Every vector must come out as it says, and there must be at least
    /// one that verifies and one that does not, so the scheme is shown to
    /// tell them apart.
    fn check_vectors(&self, integration: &str) -> Result<(), (String, String)> {
        if !self.test_vectors.iter().any(|v| v.valid) || self.test_vectors.iter().all(|v| v.valid) {
            return Err((
                "testVectors".into(),
                "needs at least one delivery that verifies and one that does not".into(),
            ));
        }
        for (i, vector) in self.test_vectors.iter().enumerate() {
            let field = format!("testVectors[{i}]");
            let verdict = self.verify(
                &vector.secret,
                &vector.headers,
                vector.body.as_bytes(),
                vector.now,
            );
            match (vector.valid, verdict) {
                (true, Err(reason)) => {
                    return Err((field, format!("`{}` should verify: {reason}", vector.name)));
                }
                (false, Ok(())) => {
                    return Err((field, format!("`{}` should not verify", vector.name)));
                }
                (false, Err(_)) => continue,
                (true, Ok(())) => {}
            }
            // A vector without an expected reading shows the signature only
            // (a provider's documented example may not be an event).
            let Some(expected_type) = vector.event_type.as_deref() else {
                continue;
            };
            match self.read(integration, &vector.headers, vector.body.as_bytes()) {
                Ok(Delivery::Event {
                    event_type,
                    delivery_id,
                    ..
                }) if event_type == expected_type
                    && vector.delivery_id.as_deref() == Some(delivery_id.as_str()) => {}
                Ok(Delivery::Event {
                    event_type,
                    delivery_id,
                    ..
                }) => {
                    return Err((
                        field,
                        format!(
                            "`{}` reads as event type `{event_type}` with delivery id \
                             `{delivery_id}`, not `{expected_type}` with {:?}",
                            vector.name, vector.delivery_id
                        ),
                    ));
                }
                Ok(Delivery::Challenge(_)) => {
                    return Err((field, format!("`{}` reads as a URL check", vector.name)));
                }
                Err(err) => return Err((field, format!("`{}`: {err}", vector.name))),
            }
        }
        Ok(())
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
