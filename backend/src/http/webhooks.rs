//! Webhooks from integrations that push events. Slack's Events API first:
//! each request is verified (v0 HMAC-SHA256 over `v0:timestamp:body` with the
//! signing secret, a five-minute timestamp window, constant-time compare)
//! before anything is read from it; `url_verification` is answered; event
//! callbacks become `slack.<event type>` events of the user in the URL, with
//! Slack's `event_id` as the idempotency key (Slack retries deliveries),
//! provided they come from the workspace and app that user connected and
//! were not first delivered for another user.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{ApiError, AppState};
use crate::events::Submitted;
use crate::store::{NewEvent, now_millis};

/// Slack's replay window.
const MAX_SKEW_SECS: i64 = 5 * 60;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/webhooks/slack/{user_id}", post(slack))
}

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

async fn slack(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let Some(secret) = state.slack_signing_secret.as_deref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "set ROOST_SLACK_SIGNING_SECRET to receive Slack events",
        ));
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if let Err(reason) = verify_slack(
        secret,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        now_millis() / 1000,
    ) {
        tracing::warn!(reason, "refused a Slack webhook");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            format!("the Slack signature does not verify: {reason}"),
        ));
    }
    let envelope: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the Slack payload is not JSON: {e}"),
        )
    })?;
    match envelope["type"].as_str() {
        Some("url_verification") => Ok(Json(json!({ "challenge": envelope["challenge"] }))),
        Some("event_callback") => {
            let kind = envelope["event"]["type"].as_str().unwrap_or("");
            if !is_event_type(kind) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_event_type",
                    "a Slack event type is 1 to 64 lower-case letters, digits, `_` and `.`",
                ));
            }
            let event_id = envelope["event_id"].as_str().ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "an event_callback needs an event_id",
                )
            })?;
            if state.store.get_user(&user_id).await?.is_none() {
                return Err(ApiError::not_found("user"));
            }
            check_workspace(&state, &user_id, &envelope).await?;
            // Slack sends each delivery to one URL: the same signed body at
            // another user's URL is a replay.
            let first_for = state
                .store
                .claim_delivery("slack", event_id, &user_id)
                .await?;
            if first_for != user_id {
                tracing::warn!("refused a Slack delivery replayed to another user's URL");
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "delivery_replayed",
                    "this Slack delivery was already received for another account",
                ));
            }
            let submitted = state
                .events
                .submit(
                    &NewEvent {
                        user_id,
                        event_id: format!("slack:{event_id}"),
                        event_type: format!("slack.{kind}"),
                        source: Some(format!(
                            "slack:{}",
                            envelope["team_id"].as_str().unwrap_or("?")
                        )),
                        payload: envelope["event"].clone(),
                    },
                    None,
                )
                .await?;
            Ok(Json(match submitted {
                Submitted::Ingested { duplicate, run_ids } => {
                    json!({ "ok": true, "duplicate": duplicate, "run_ids": run_ids })
                }
                Submitted::Published { duplicate, .. } => {
                    json!({ "ok": true, "duplicate": duplicate, "run_ids": null })
                }
            }))
        }
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_event",
            format!("unsupported Slack request type {other:?}"),
        )),
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

/// The delivery must come from the Slack workspace and app the user
/// connected: the signing secret is the app's, shared by every user, so
/// the signature alone does not say whose events these are.
async fn check_workspace(
    state: &AppState,
    user_id: &str,
    envelope: &Value,
) -> Result<(), ApiError> {
    let Some((team, app)) = state.store.bound_account(user_id, "slack").await? else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "slack_not_connected",
            "this account has not connected Slack, so it takes no Slack events; connect Slack \
             through a setup link first",
        ));
    };
    let same_team = envelope["team_id"].as_str() == Some(team.as_str());
    let same_app = app.is_none_or(|app| envelope["api_app_id"].as_str() == Some(app.as_str()));
    if !(same_team && same_app) {
        tracing::warn!("refused a Slack delivery from a workspace the user did not connect");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "workspace_mismatch",
            "this Slack delivery comes from a workspace or app this account did not connect",
        ));
    }
    Ok(())
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
