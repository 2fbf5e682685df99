//! Checking a delivery's signature and reading what it holds.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{
    Delivery, Encoding, HeaderFormat, Headers, ReadError, Refusal, ValueSource, WebhookDef,
};

impl WebhookDef {
    /// Checks the signature of `body` with `secret` at `now_secs`.
    pub fn verify(
        &self,
        secret: &str,
        headers: &dyn Headers,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), Refusal> {
        let sig = &self.signature;
        let header = headers.header(&sig.header).ok_or("no signature header")?;
        let (timestamp, candidates): (Option<&str>, Vec<&str>) = match sig.format {
            HeaderFormat::Plain => {
                let value = match &sig.prefix {
                    Some(prefix) => header
                        .strip_prefix(prefix.as_str())
                        .ok_or("bad signature version")?,
                    None => header,
                };
                let ts = match &sig.timestamp_header {
                    Some(name) => Some(headers.header(name).ok_or("no timestamp header")?),
                    None => None,
                };
                (ts, vec![value])
            }
            HeaderFormat::KeyValue => {
                let pairs: Vec<(&str, &str)> = header
                    .split(',')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .collect();
                let ts = sig.timestamp_key.as_deref().map(|key| {
                    pairs
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| *v)
                        .ok_or("no timestamp in the signature header")
                });
                let key = sig.signature_key.as_deref().unwrap_or_default();
                let values = pairs
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, v)| *v)
                    .collect();
                (ts.transpose()?, values)
            }
        };
        if let Some(ts) = timestamp {
            let ts: i64 = ts.trim().parse().map_err(|_| "bad timestamp")?;
            if now_secs.abs_diff(ts) > sig.tolerance_seconds {
                return Err("stale timestamp");
            }
        }
        let (before, after) = sig.signed.split_once("{body}").unwrap_or((&sig.signed, ""));
        let ts = timestamp.unwrap_or_default();
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).map_err(|_| "bad secret")?;
        mac.update(before.replace("{timestamp}", ts).as_bytes());
        mac.update(body);
        mac.update(after.replace("{timestamp}", ts).as_bytes());
        let mut decodable = false;
        for candidate in candidates {
            let Some(expected) = self.decode(candidate) else {
                continue;
            };
            decodable = true;
            if mac.clone().verify_slice(&expected).is_ok() {
                return Ok(());
            }
        }
        Err(if decodable {
            "signature mismatch"
        } else {
            "bad signature encoding"
        })
    }

    fn decode(&self, text: &str) -> Option<Vec<u8>> {
        match self.signature.encoding {
            Encoding::Hex => hex::decode(text).ok(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        }
    }

    /// Reads a verified delivery of integration `integration`.
    pub fn read(
        &self,
        integration: &str,
        headers: &dyn Headers,
        body: &[u8],
    ) -> Result<Delivery, ReadError> {
        let json: Value =
            serde_json::from_slice(body).map_err(|e| ReadError::NotJson(e.to_string()))?;
        if let Some(check) = &self.challenge
            && json.pointer(&check.field).and_then(Value::as_str) == Some(check.equals.as_str())
        {
            let answer = json.pointer(&check.answer).cloned().unwrap_or(Value::Null);
            return Ok(Delivery::Challenge(answer));
        }
        let raw_type = lookup(&self.event_type.from, headers, &json).ok_or(ReadError::EventType)?;
        let event_type = self.event_type(integration, &raw_type);
        if !crate::triggers::valid_type(&event_type) {
            return Err(ReadError::EventType);
        }
        let delivery_id = lookup(&self.delivery_id, headers, &json)
            .filter(|id| !id.is_empty() && id.len() <= 150 && id.chars().all(|c| !c.is_control()))
            .ok_or_else(|| ReadError::DeliveryId(self.delivery_id.to_string()))?;
        let account = self.account.as_ref().map(|def| {
            let id = lookup(&def.id, headers, &json).unwrap_or_default();
            let app = def.app.as_ref().and_then(|app| lookup(app, headers, &json));
            (id, app)
        });
        let payload = match &self.payload {
            Some(pointer) => json.pointer(pointer).cloned().unwrap_or(Value::Null),
            None => json,
        };
        Ok(Delivery::Event {
            event_type,
            delivery_id,
            account,
            payload,
        })
    }

    /// roost's event type for the provider's `raw` type.
    pub fn event_type(&self, integration: &str, raw: &str) -> String {
        let name = match self.event_type.map.get(raw) {
            Some(mapped) => mapped.clone(),
            None => raw.replace('/', "."),
        };
        format!("{integration}.{name}")
    }
}

/// The text of `source` in a delivery (numbers as their digits).
fn lookup(source: &ValueSource, headers: &dyn Headers, json: &Value) -> Option<String> {
    match source {
        ValueSource::Header(name) => headers.header(name).map(str::to_string),
        ValueSource::Field(pointer) => match json.pointer(pointer)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        },
    }
}
