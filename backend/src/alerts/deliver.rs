//! Sending one alert on each of the user's channels: the outbox (a
//! message in `GET /v1/messages`), Slack (`chat.postMessage`) and email
//! (SendGrid) through the user's own connected credentials, the same
//! host-side methods scripts call, and a webhook signed with HMAC-SHA256.

use std::sync::Arc;
use std::time::Duration;

use hmac::Mac as _;
use serde_json::{Value, json};

use super::happened;
use crate::connectors::{CallRequest, Connectors};
use crate::store::{AlertGroup, AlertMessage, AlertSettings, Store, now_millis};

/// How long a webhook receiver may take to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Deliver {
    store: Arc<dyn Store>,
    connectors: Arc<Connectors>,
    oauth: Arc<crate::oauth::OAuth>,
    deploy: Arc<crate::deploy::DeployService>,
    keys: Arc<crate::credentials::MasterKeys>,
    base_url: String,
    http: reqwest::Client,
    allow_private_webhooks: bool,
}

/// One alert, as every channel words it.
struct Alert {
    kind: &'static str,
    /// Whether this is a try again after a failed send: the outbox, which
    /// took it the first time, is not written twice.
    again: bool,
    script_id: String,
    run_id: String,
    subject: String,
    text: String,
    json: Value,
}

impl Deliver {
    pub(super) fn new(
        store: Arc<dyn Store>,
        connectors: Arc<Connectors>,
        oauth: Arc<crate::oauth::OAuth>,
        deploy: Arc<crate::deploy::DeployService>,
        keys: Arc<crate::credentials::MasterKeys>,
        base_url: &str,
        allow_private_webhooks: bool,
    ) -> Self {
        let http = webhook_client()
            .build()
            .expect("a plain HTTP client builds");
        Self {
            store,
            connectors,
            oauth,
            deploy,
            keys,
            base_url: base_url.trim_end_matches('/').to_string(),
            http,
            allow_private_webhooks,
        }
    }

    /// The signing secret of a user's webhook: derived from the master key
    /// and the settings' nonce, so it is never stored (a master key
    /// rotation changes it; `GET /v1/alerts` shows the current one).
    pub(super) fn webhook_secret(&self, user_id: &str, nonce: &str) -> String {
        hex::encode(
            self.keys
                .derive_secret(&format!("alert-webhook|{user_id}|{nonce}")),
        )
    }

    /// Tells of `told` failures of `group`'s script.
    pub(super) async fn failures(
        &self,
        group: &AlertGroup,
        message: AlertMessage,
        told: i64,
        settings: &AlertSettings,
    ) -> Result<(), String> {
        let run_url = format!("{}/runs/{}", self.base_url, group.last_run_id);
        let error = group
            .last_error
            .clone()
            .unwrap_or_else(|| "no error recorded".into());
        let what = happened(group);
        let text = match message {
            AlertMessage::First => {
                format!("roost: `{}` {what}: {error}\nRun: {run_url}", group.subject)
            }
            AlertMessage::Summary => format!(
                "roost: `{}` {what} {told} more time(s) between {} and {} UTC (the last: {error})\nLast run: {run_url}",
                group.subject,
                clock(group.window_start),
                clock(group.window_end),
            ),
        };
        let alert = Alert {
            kind: "run_failed",
            again: group.attempts > 0,
            script_id: group.script_id.clone(),
            run_id: group.last_run_id.clone(),
            subject: format!("roost: `{}` {what}", group.subject),
            json: json!({
                "kind": "run_failed",
                "message": if message == AlertMessage::First { "first" } else { "summary" },
                "script_id": group.script_id,
                "script": group.subject,
                "count": told,
                "window_start": group.window_start,
                "window_end": group.window_end,
                "status": group.last_status,
                "error": group.last_error,
                "run_id": group.last_run_id,
                "run_url": run_url,
            }),
            text,
        };
        self.send(&group.user_id, &alert, settings).await
    }

    /// Tells that `integration`'s credential needs reconnecting.
    pub(super) async fn reconnect(
        &self,
        user_id: &str,
        integration: &str,
        settings: &AlertSettings,
    ) -> Result<(), String> {
        let setup_url = self
            .deploy
            .registry
            .get(integration)
            .map(|definition| self.deploy.setup_link(definition, user_id))
            .unwrap_or_default();
        let alert = Alert {
            kind: "reconnect_needed",
            again: false,
            script_id: String::new(),
            run_id: String::new(),
            subject: format!("roost: reconnect {integration}"),
            text: format!(
                "roost: {integration} needs reconnecting: its credential no longer works, and \
                 the scripts that use it fail until it is. Reconnect: {setup_url}"
            ),
            json: json!({
                "kind": "reconnect_needed",
                "integration": integration,
                "setup_url": setup_url,
            }),
        };
        self.send(user_id, &alert, settings).await
    }

    /// Sends on every channel; the first failure is the answer (the message
    /// goes again on every channel, so a receiver may see it twice).
    async fn send(
        &self,
        user_id: &str,
        alert: &Alert,
        settings: &AlertSettings,
    ) -> Result<(), String> {
        for channel in &settings.channels {
            let sent = match channel.as_str() {
                "outbox" if alert.again => Ok(()),
                "outbox" => self
                    .store
                    .insert_alert_message(
                        user_id,
                        &alert.script_id,
                        &alert.run_id,
                        &alert.subject,
                        &alert.text,
                        now_millis(),
                    )
                    .await
                    .map_err(|e| e.to_string()),
                "slack" => {
                    let input = json!({
                        "channel": settings.slack_channel.clone().unwrap_or_default(),
                        "text": alert.text,
                    });
                    self.call(user_id, "slack", "post_message", &input).await
                }
                "email" => {
                    let input = json!({
                        "to": settings.email_to.clone().unwrap_or_default(),
                        "from": settings.email_from.clone().unwrap_or_default(),
                        "subject": alert.subject,
                        "text": alert.text,
                    });
                    self.call(user_id, "sendgrid", "send_email", &input).await
                }
                "webhook" => self.webhook(user_id, alert, settings).await,
                other => Err(format!("no alert channel `{other}`")),
            };
            sent.map_err(|err| format!("{channel}: {err}"))?;
        }
        tracing::info!(user = %user_id, kind = alert.kind, run_id = %alert.run_id, "alert sent");
        Ok(())
    }

    /// A host-side integration method, with the user's own credential.
    async fn call(
        &self,
        user_id: &str,
        integration: &str,
        method: &str,
        input: &Value,
    ) -> Result<(), String> {
        let input = input.to_string();
        let declared = [integration.to_string()];
        let report = self
            .connectors
            .call(
                &CallRequest {
                    user_id,
                    declared: &declared,
                    integration,
                    method,
                    input: input.as_bytes(),
                },
                self.oauth.as_ref(),
            )
            .await;
        let answer = report.result.map_err(|err| err.to_string())?;
        // Slack answers 200 with `ok: false` when it refuses.
        if answer.get("ok") == Some(&Value::Bool(false)) {
            return Err(format!("{integration} refused: {}", answer["error"]));
        }
        Ok(())
    }

    async fn webhook(
        &self,
        user_id: &str,
        alert: &Alert,
        settings: &AlertSettings,
    ) -> Result<(), String> {
        let (Some(url), Some(nonce)) = (&settings.webhook_url, &settings.webhook_nonce) else {
            return Err("no webhook_url is set".into());
        };
        // Checked again at each send, and the request goes to the very
        // addresses checked: a name that resolves elsewhere the second time
        // (DNS rebinding) cannot turn it inwards.
        let pinned = check_webhook_url(url, self.allow_private_webhooks).await?;
        let http = match pinned {
            None => self.http.clone(),
            Some((host, addresses)) => webhook_client()
                .resolve_to_addrs(&host, &addresses)
                .build()
                .map_err(|err| format!("building the webhook's client failed: {err}"))?,
        };
        let body = alert.json.to_string();
        let timestamp = now_millis() / 1000;
        let secret = self.webhook_secret(user_id, nonce);
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes any key length");
        mac.update(format!("{timestamp}.{body}").as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        let response = http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Roost-Timestamp", timestamp.to_string())
            .header("X-Roost-Signature", format!("v1={signature}"))
            .body(body)
            .send()
            .await
            .map_err(|err| format!("the webhook did not answer: {}", err.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("the webhook answered {}", response.status()));
        }
        Ok(())
    }
}

/// How webhooks are sent: a short timeout, and no redirects (a redirect
/// could lead anywhere the check did not look).
fn webhook_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
}

/// Refuses a webhook URL that is not http(s), or whose host is (or
/// resolves to) a loopback, private or link-local address, unless the
/// operator allows those (`alert_webhooks_private`). The host and the
/// addresses checked, to send to them only (`None` when not checked).
pub(super) async fn check_webhook_url(
    url: &str,
    allow_private: bool,
) -> Result<Option<(String, Vec<std::net::SocketAddr>)>, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|err| format!("`webhook_url` is not a URL: {err}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("`webhook_url` is an http:// or https:// URL".into());
    }
    if allow_private {
        return Ok(None);
    }
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']']);
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|err| format!("`webhook_url`'s host does not resolve: {err}"))?
        .collect();
    for address in &addresses {
        if roost_sandbox::is_restricted(address.ip()) {
            return Err(format!(
                "`webhook_url` points to a private address ({}); alerts go to public addresses",
                address.ip()
            ));
        }
    }
    Ok(Some((host.to_string(), addresses)))
}

/// A Unix-ms time as `HH:MM:SS`, UTC.
fn clock(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}
