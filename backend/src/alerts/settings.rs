//! A user's alert settings: the default, overrides per script, and the
//! checks a change must pass.

use serde::{Deserialize, Serialize};

use super::deliver::Deliver;
use super::{AlertError, DEFAULT_WINDOW_SECS};
use crate::store::{AlertGroup, AlertSettings, Store, now_millis};

/// The ways an alert goes out.
pub(super) const CHANNELS: [&str; 4] = ["outbox", "slack", "email", "webhook"];

/// The longest window (a day).
const MAX_WINDOW_SECS: i64 = 86_400;

/// A change of settings: what is given replaces what was.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettingsPatch {
    pub enabled: Option<bool>,
    pub channels: Option<Vec<String>>,
    pub slack_channel: Option<String>,
    pub email_to: Option<String>,
    pub email_from: Option<String>,
    pub webhook_url: Option<String>,
    pub window_secs: Option<i64>,
    /// Hold cron ticks of scripts whose credential needs reconnecting
    /// (the default's setting; an override's is ignored).
    pub pause_on_reconnect: Option<bool>,
}

/// What `GET /v1/alerts` shows.
#[derive(Debug, Clone, Serialize)]
pub struct AlertsView {
    /// The default, as it applies (roost's own when never set).
    pub default: AlertSettings,
    /// The webhook's signing secret, when a webhook is set: receivers
    /// check `X-Roost-Signature` with it.
    pub webhook_secret: Option<String>,
    pub overrides: Vec<AlertSettings>,
    pub recent: Vec<AlertGroup>,
}

/// roost's default: alerts on, to the outbox, one message an hour at most.
fn builtin(script_id: &str) -> AlertSettings {
    AlertSettings {
        script_id: script_id.to_string(),
        enabled: true,
        channels: vec!["outbox".into()],
        slack_channel: None,
        email_to: None,
        email_from: None,
        webhook_url: None,
        webhook_nonce: None,
        window_secs: DEFAULT_WINDOW_SECS,
        pause_on_reconnect: false,
        updated_at: 0,
    }
}

/// The settings that apply to `script_id` (empty: the user's default).
pub(super) fn effective(own: &[AlertSettings], script_id: &str) -> AlertSettings {
    let default = own
        .iter()
        .find(|s| s.script_id.is_empty())
        .cloned()
        .unwrap_or_else(|| builtin(""));
    own.iter()
        .find(|s| !script_id.is_empty() && s.script_id == script_id)
        .cloned()
        .unwrap_or(default)
}

pub(super) async fn view(
    store: &dyn Store,
    deliver: &Deliver,
    user_id: &str,
) -> Result<AlertsView, AlertError> {
    let own = store.alert_settings(user_id).await?;
    let default = effective(&own, "");
    Ok(AlertsView {
        webhook_secret: default
            .webhook_nonce
            .as_deref()
            .map(|nonce| deliver.webhook_secret(user_id, nonce)),
        default,
        overrides: own
            .into_iter()
            .filter(|s| !s.script_id.is_empty())
            .collect(),
        recent: store.recent_alert_groups(user_id, 50).await?,
    })
}

pub(super) async fn update(
    store: &dyn Store,
    user_id: &str,
    script_id: Option<&str>,
    patch: AlertSettingsPatch,
    allow_private_webhooks: bool,
) -> Result<AlertSettings, AlertError> {
    let script_id = script_id.unwrap_or_default();
    if !script_id.is_empty() && store.get_script(user_id, script_id).await?.is_none() {
        return Err(AlertError::NoScript);
    }
    let own = store.alert_settings(user_id).await?;
    let mut settings = match own.iter().find(|s| s.script_id == script_id) {
        Some(existing) => existing.clone(),
        // A new override starts from the default.
        None => AlertSettings {
            script_id: script_id.to_string(),
            ..effective(&own, "")
        },
    };
    let previous_url = settings.webhook_url.clone();
    let AlertSettingsPatch {
        enabled,
        channels,
        slack_channel,
        email_to,
        email_from,
        webhook_url,
        window_secs,
        pause_on_reconnect,
    } = patch;
    if let Some(pause) = pause_on_reconnect {
        settings.pause_on_reconnect = pause;
    }
    if let Some(enabled) = enabled {
        settings.enabled = enabled;
    }
    if let Some(channels) = channels {
        settings.channels = channels;
    }
    settings.slack_channel = slack_channel.or(settings.slack_channel);
    settings.email_to = email_to.or(settings.email_to);
    settings.email_from = email_from.or(settings.email_from);
    settings.webhook_url = webhook_url.or(settings.webhook_url);
    if let Some(window_secs) = window_secs {
        settings.window_secs = window_secs;
    }
    check(&settings, allow_private_webhooks).await?;
    // A new webhook address gets a new signing secret.
    if settings.webhook_url.is_some()
        && (settings.webhook_nonce.is_none() || settings.webhook_url != previous_url)
    {
        settings.webhook_nonce = Some(hex::encode(rand::random::<[u8; 16]>()));
    }
    settings.updated_at = now_millis();
    store.put_alert_settings(user_id, &settings).await?;
    Ok(settings)
}

/// Refuses settings that could not be delivered.
async fn check(settings: &AlertSettings, allow_private_webhooks: bool) -> Result<(), AlertError> {
    let invalid = |message: String| Err(AlertError::Invalid(message));
    if let Some(unknown) = settings
        .channels
        .iter()
        .find(|c| !CHANNELS.contains(&c.as_str()))
    {
        return invalid(format!(
            "no alert channel `{unknown}`; the channels are {}",
            CHANNELS.join(", ")
        ));
    }
    if !(1..=MAX_WINDOW_SECS).contains(&settings.window_secs) {
        return invalid(format!("`window_secs` is 1 to {MAX_WINDOW_SECS}"));
    }
    let wants = |channel: &str| settings.channels.iter().any(|c| c == channel);
    if wants("slack") && settings.slack_channel.as_deref().is_none_or(str::is_empty) {
        return invalid("the slack channel needs `slack_channel` (a channel id or name)".into());
    }
    if wants("email") {
        for (field, value) in [
            ("email_to", &settings.email_to),
            ("email_from", &settings.email_from),
        ] {
            if !value
                .as_deref()
                .is_some_and(|v| v.contains('@') && v.len() <= 254)
            {
                return invalid(format!(
                    "the email channel needs `{field}`, an email address"
                ));
            }
        }
    }
    match (&settings.webhook_url, wants("webhook")) {
        (None, true) => invalid("the webhook channel needs `webhook_url`".into()),
        (Some(url), _) => super::deliver::check_webhook_url(url, allow_private_webhooks)
            .await
            .map(|_| ())
            .map_err(AlertError::Invalid),
        (None, false) => Ok(()),
    }
}
