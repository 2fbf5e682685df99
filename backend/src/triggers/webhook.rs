//! Webhooks from integrations that push events. Slack's Events API first:
//! each request is verified (v0 HMAC-SHA256 over `v0:timestamp:body` with the
//! signing secret, a five-minute timestamp window, constant-time compare)
//! before anything is read from it; `url_verification` is answered; event
//! callbacks become `slack.<event type>` events of the user in the URL, with
//! Slack's `event_id` as the idempotency key (Slack retries deliveries),
//! provided they come from the workspace and app that user connected and
//! were not first delivered for another user.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::event::{EventError, EventService, Submitted};
use crate::store::{NewEvent, Store, StoreError, now_millis};

/// Slack's replay window.
const MAX_SKEW_SECS: i64 = 5 * 60;

/// Checks a Slack request signature. Pure, so it can be tested on its own.
pub(crate) fn verify_slack(
    secret: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_secs: i64,
) -> Result<(), &'static str> {
    let ts: i64 = timestamp.parse().map_err(|_| "bad timestamp")?;
    if (now_secs - ts).abs() > MAX_SKEW_SECS {
        return Err("stale timestamp");
    }
    let expected = signature
        .strip_prefix("v0=")
        .ok_or("bad signature version")?;
    let expected = hex::decode(expected).map_err(|_| "bad signature encoding")?;
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).map_err(|_| "bad secret")?;
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| "signature mismatch")
}

/// Why a Slack delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// roost has no Slack signing secret.
    #[error("set ROOST_SLACK_SIGNING_SECRET to receive Slack events")]
    NotConfigured,
    /// The signature does not verify.
    #[error("the Slack signature does not verify: {0}")]
    BadSignature(&'static str),
    /// The body is not JSON.
    #[error("the Slack payload is not JSON: {0}")]
    NotJson(String),
    /// The event type is not one.
    #[error("a Slack event type is 1 to 64 lower-case letters, digits, `_` and `.`")]
    InvalidEventType,
    /// An event callback without its id.
    #[error("an event_callback needs an event_id")]
    NoEventId,
    /// No user has the id in the URL.
    #[error("no such user")]
    NoUser,
    /// The user has not connected Slack.
    #[error(
        "this account has not connected Slack, so it takes no Slack events; connect Slack \
         through a setup link first"
    )]
    NotConnected,
    /// The delivery comes from another workspace or app.
    #[error("this Slack delivery comes from a workspace or app this account did not connect")]
    WorkspaceMismatch,
    /// The delivery was first received for another user.
    #[error("this Slack delivery was already received for another account")]
    Replayed,
    /// A request type roost does not take.
    #[error("unsupported Slack request type {0}")]
    Unsupported(String),
    /// The event was not accepted.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a verified Slack request asks for.
#[derive(Debug)]
pub enum SlackAnswer {
    /// `url_verification`: the challenge to send back.
    Challenge(Value),
    /// An event callback, submitted as an event of the user.
    Event(Submitted),
}

/// Receives Slack's Events API deliveries.
#[derive(Clone)]
pub struct SlackWebhooks {
    store: Arc<dyn Store>,
    events: EventService,
    signing_secret: Option<String>,
}

impl SlackWebhooks {
    /// Deliveries signed with `signing_secret` (none: Slack is not set up)
    /// become events through `events`.
    pub fn new(
        store: Arc<dyn Store>,
        events: EventService,
        signing_secret: Option<String>,
    ) -> Self {
        Self {
            store,
            events,
            signing_secret,
        }
    }

    /// One delivery for `user_id`, with its `X-Slack-Request-Timestamp`
    /// and `X-Slack-Signature` headers.
    pub async fn receive(
        &self,
        user_id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<SlackAnswer, SlackError> {
        let secret = self
            .signing_secret
            .as_deref()
            .ok_or(SlackError::NotConfigured)?;
        if let Err(reason) = verify_slack(secret, timestamp, signature, body, now_millis() / 1000) {
            tracing::warn!(reason, "refused a Slack webhook");
            return Err(SlackError::BadSignature(reason));
        }
        let envelope: Value =
            serde_json::from_slice(body).map_err(|e| SlackError::NotJson(e.to_string()))?;
        match envelope["type"].as_str() {
            Some("url_verification") => Ok(SlackAnswer::Challenge(envelope["challenge"].clone())),
            Some("event_callback") => self.event(user_id, &envelope).await.map(SlackAnswer::Event),
            other => Err(SlackError::Unsupported(format!("{other:?}"))),
        }
    }

    async fn event(&self, user_id: &str, envelope: &Value) -> Result<Submitted, SlackError> {
        let kind = envelope["event"]["type"].as_str().unwrap_or("");
        if !is_event_type(kind) {
            return Err(SlackError::InvalidEventType);
        }
        let event_id = envelope["event_id"].as_str().ok_or(SlackError::NoEventId)?;
        if self.store.get_user(user_id).await?.is_none() {
            return Err(SlackError::NoUser);
        }
        self.check_workspace(user_id, envelope).await?;
        // Slack sends each delivery to one URL: the same signed body at
        // another user's URL is a replay.
        let first_for = self
            .store
            .claim_delivery("slack", event_id, user_id)
            .await?;
        if first_for != user_id {
            tracing::warn!("refused a Slack delivery replayed to another user's URL");
            return Err(SlackError::Replayed);
        }
        let event = NewEvent {
            user_id: user_id.to_string(),
            event_id: format!("slack:{event_id}"),
            event_type: format!("slack.{kind}"),
            source: Some(format!(
                "slack:{}",
                envelope["team_id"].as_str().unwrap_or("?")
            )),
            payload: envelope["event"].clone(),
        };
        Ok(self.events.submit(&event, None).await?)
    }

    /// The delivery must come from the Slack workspace and app the user
    /// connected: the signing secret is the app's, shared by every user, so
    /// the signature alone does not say whose events these are.
    async fn check_workspace(&self, user_id: &str, envelope: &Value) -> Result<(), SlackError> {
        let Some((team, app)) = self.store.bound_account(user_id, "slack").await? else {
            return Err(SlackError::NotConnected);
        };
        let same_team = envelope["team_id"].as_str() == Some(team.as_str());
        let same_app = app.is_none_or(|app| envelope["api_app_id"].as_str() == Some(app.as_str()));
        if !(same_team && same_app) {
            tracing::warn!("refused a Slack delivery from a workspace the user did not connect");
            return Err(SlackError::WorkspaceMismatch);
        }
        Ok(())
    }
}

/// Whether `kind` reads as a Slack event type (`message`, `app_mention`).
fn is_event_type(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, ts: &str, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:").as_bytes());
        mac.update(body);
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn good_bad_and_stale_signatures() {
        let body = br#"{"type":"event_callback"}"#;
        let good = sign("s3cret", "1700000000", body);
        assert_eq!(
            verify_slack("s3cret", "1700000000", &good, body, 1_700_000_100),
            Ok(())
        );
        assert_eq!(
            verify_slack("other", "1700000000", &good, body, 1_700_000_100),
            Err("signature mismatch")
        );
        assert_eq!(
            verify_slack("s3cret", "1700000000", &good, b"{}", 1_700_000_100),
            Err("signature mismatch")
        );
        assert_eq!(
            verify_slack("s3cret", "1700000000", &good, body, 1_700_000_301),
            Err("stale timestamp")
        );
        assert_eq!(
            verify_slack("s3cret", "1700000000", "v1=00", body, 1_700_000_000),
            Err("bad signature version")
        );
        assert_eq!(
            verify_slack("s3cret", "soon", &good, body, 1_700_000_000),
            Err("bad timestamp")
        );
    }
}
