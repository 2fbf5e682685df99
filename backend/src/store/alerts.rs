//! Alerts: each user's settings, the windows failures are grouped into,
//! which of them are due to be sent, and credentials that need
//! reconnecting (see `crate::alerts` for the rules).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Row, Type};

use super::engine::{Column, Engine, SqlStore};
use super::queue::INSERT_MESSAGE_SQL;
use super::{StoreError, StoreResult, new_id};

/// A user's alert settings: their default (`script_id` empty) or one
/// script's override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSettings {
    pub script_id: String,
    pub enabled: bool,
    /// `outbox`, `slack`, `email`, `webhook`.
    pub channels: Vec<String>,
    pub slack_channel: Option<String>,
    pub email_to: Option<String>,
    pub email_from: Option<String>,
    pub webhook_url: Option<String>,
    /// Picks the webhook's signing secret (derived, never stored).
    #[serde(skip)]
    pub webhook_nonce: Option<String>,
    pub window_secs: i64,
    /// The user's cron ticks wait while a credential their script uses
    /// needs reconnecting (read from the default only).
    pub pause_on_reconnect: bool,
    pub updated_at: i64,
}

/// A run that failed for good (no retry to come).
#[derive(Debug, Clone)]
pub struct Failure {
    pub run_id: String,
    pub user_id: String,
    pub script_id: String,
    pub script_name: String,
    pub status: String,
    pub error: Option<String>,
    pub finished_at: i64,
}

/// Failures of one script falling in one window, to add to its group.
#[derive(Debug, Clone)]
pub struct GroupHit {
    pub user_id: String,
    pub script_id: String,
    pub subject: String,
    pub window_start: i64,
    pub window_end: i64,
    /// The window before it: when it had failures too, this one's first
    /// is not sent at once (the summaries carry a streak).
    pub previous_start: i64,
    pub count: i64,
    pub last_run_id: String,
    pub last_status: String,
    pub last_error: Option<String>,
}

/// One window of one script's failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertGroup {
    pub id: String,
    pub user_id: String,
    pub script_id: String,
    pub subject: String,
    pub kind: String,
    pub window_start: i64,
    pub window_end: i64,
    pub count: i64,
    /// Failures already told (by the first message).
    pub sent_count: i64,
    pub notify_first: bool,
    pub last_run_id: String,
    pub last_status: String,
    pub last_error: Option<String>,
    pub first_sent_at: Option<i64>,
    pub summary_sent_at: Option<i64>,
    /// Failed sends of the pending message so far.
    pub attempts: i64,
}

/// Which message of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertMessage {
    /// The first failure after a quiet window, at once.
    First,
    /// The rest of the window, once it has ended.
    Summary,
}

/// The kind of a run failure group.
pub const RUN_FAILED: &str = "run_failed";

/// A window's summary is due once the scan has passed its end: every
/// failure in it is counted by then.
const SCANNED_TO: &str = "(SELECT scanned_to FROM alert_cursor WHERE id = 1)";

/// Most failures read by one scan.
const SCAN_BATCH: i64 = 5000;

const SETTINGS_COLUMNS: &str = "script_id, enabled, channels, slack_channel, email_to, email_from, \
     webhook_url, webhook_nonce, window_secs, updated_at, pause_on_reconnect";

const GROUP_COLUMNS: &str = "id, user_id, script_id, subject, kind, window_start, window_end, count, \
     sent_count, notify_first, last_run_id, last_status, last_error, first_sent_at, summary_sent_at, attempts";

#[async_trait]
pub trait AlertStore: Send + Sync {
    /// The user's settings: the default (if set) and each override.
    async fn alert_settings(&self, user_id: &str) -> StoreResult<Vec<AlertSettings>>;
    /// Sets the user's default (`script_id` empty) or a script's override.
    async fn put_alert_settings(&self, user_id: &str, settings: &AlertSettings) -> StoreResult<()>;
    /// Removes a script's override; whether there was one.
    async fn delete_alert_settings(&self, user_id: &str, script_id: &str) -> StoreResult<bool>;
    /// Where the last scan stopped and the failures since, up to `to`
    /// (Unix ms); `None` the very first time (which starts the cursor at
    /// `to`: nothing older is alerted).
    async fn failures_since_scan(&self, to: i64) -> StoreResult<Option<(i64, i64, Vec<Failure>)>>;
    /// Adds `hits` to their groups and moves the cursor from `from` to
    /// `to`, in one transaction; false (nothing written) when another
    /// node moved it first.
    async fn record_failures(&self, from: i64, to: i64, hits: &[GroupHit]) -> StoreResult<bool>;
    /// Groups with a message due at `now`.
    async fn due_alert_groups(&self, now: i64) -> StoreResult<Vec<AlertGroup>>;
    /// Takes the sending of one message of a group (once, across nodes):
    /// the group as it stands, or `None` when it is not due or taken.
    async fn claim_alert(
        &self,
        id: &str,
        message: AlertMessage,
        now: i64,
    ) -> StoreResult<Option<AlertGroup>>;
    /// Gives a claimed message back after its sending failed, to go again
    /// at `retry_at`.
    async fn release_alert(
        &self,
        id: &str,
        message: AlertMessage,
        retry_at: i64,
    ) -> StoreResult<()>;
    /// The user's latest groups, newest first.
    async fn recent_alert_groups(&self, user_id: &str, limit: i64) -> StoreResult<Vec<AlertGroup>>;
    /// Credentials that need reconnecting and were not yet told, each
    /// taken (once, across nodes) at `now`: (user, integration). Those
    /// fixed since are forgotten, so a later refusal is told again.
    async fn claim_reconnect_alerts(&self, now: i64) -> StoreResult<Vec<(String, String)>>;
    /// The integration, if any, whose credential needs reconnecting and
    /// holds script `script_id`'s cron ticks (its owner asked for that,
    /// and its current version uses the integration).
    async fn tick_held_by(&self, script_id: &str) -> StoreResult<Option<String>>;
    /// Puts an alert in the user's outbox (`GET /v1/messages`).
    async fn insert_alert_message(
        &self,
        user_id: &str,
        script_id: &str,
        run_id: &str,
        subject: &str,
        body: &str,
        now: i64,
    ) -> StoreResult<()>;
}

#[async_trait]
impl<DB> AlertStore for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    String: Column<DB>,
    i64: Column<DB>,
    Option<String>: Column<DB>,
    Option<i64>: Column<DB>,
{
    async fn alert_settings(&self, user_id: &str) -> StoreResult<Vec<AlertSettings>> {
        let rows = sqlx::query(&format!(
            "SELECT {SETTINGS_COLUMNS} FROM alert_settings WHERE user_id = $1 ORDER BY script_id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(settings_from_row).collect()
    }

    async fn put_alert_settings(&self, user_id: &str, s: &AlertSettings) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO alert_settings (user_id, {SETTINGS_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (user_id, script_id) DO UPDATE SET enabled = excluded.enabled, \
             channels = excluded.channels, slack_channel = excluded.slack_channel, \
             email_to = excluded.email_to, email_from = excluded.email_from, \
             webhook_url = excluded.webhook_url, webhook_nonce = excluded.webhook_nonce, \
             window_secs = excluded.window_secs, updated_at = excluded.updated_at, \
             pause_on_reconnect = excluded.pause_on_reconnect"
        ))
        .bind(user_id)
        .bind(&s.script_id)
        .bind(i64::from(s.enabled))
        .bind(serde_json::to_string(&s.channels).expect("names serialise"))
        .bind(&s.slack_channel)
        .bind(&s.email_to)
        .bind(&s.email_from)
        .bind(&s.webhook_url)
        .bind(&s.webhook_nonce)
        .bind(s.window_secs)
        .bind(s.updated_at)
        .bind(i64::from(s.pause_on_reconnect))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_alert_settings(&self, user_id: &str, script_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM alert_settings WHERE user_id = $1 AND script_id = $2")
            .bind(user_id)
            .bind(script_id)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn failures_since_scan(&self, to: i64) -> StoreResult<Option<(i64, i64, Vec<Failure>)>> {
        let from: Option<i64> = sqlx::query("SELECT scanned_to FROM alert_cursor WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.try_get("scanned_to"))
            .transpose()?;
        let Some(from) = from else {
            sqlx::query("INSERT INTO alert_cursor (id, scanned_to) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
                .bind(to)
                .execute(&self.pool)
                .await?;
            return Ok(None);
        };
        // Final failures only: a retry to come is not a failure yet.
        let rows = sqlx::query(
            "SELECT r.id, r.user_id, r.script_id, s.name, r.status, r.error, r.finished_at \
             FROM runs r JOIN scripts s ON s.id = r.script_id \
             WHERE r.status IN ('failed', 'timed_out', 'limit_exceeded') \
             AND r.finished_at > $1 AND r.finished_at <= $2 \
             AND NOT EXISTS (SELECT 1 FROM runs n WHERE n.first_run_id = COALESCE(r.first_run_id, r.id) \
                             AND n.attempt > r.attempt) \
             ORDER BY r.finished_at LIMIT $3",
        )
        .bind(from)
        .bind(to)
        .bind(SCAN_BATCH)
        .fetch_all(&self.pool)
        .await?;
        let failures = rows
            .iter()
            .map(|row| {
                Ok(Failure {
                    run_id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    script_id: row.try_get("script_id")?,
                    script_name: row.try_get("name")?,
                    status: row.try_get("status")?,
                    error: row.try_get("error")?,
                    finished_at: row.try_get("finished_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // A full batch stops at its last failure's time; the rest of that
        // millisecond is read again next time (a group may count one twice
        // only if a millisecond held more than a batch).
        let to = match failures.last() {
            Some(last) if failures.len() as i64 == SCAN_BATCH => last.finished_at,
            _ => to,
        };
        Ok(Some((from, to, failures)))
    }

    async fn record_failures(&self, from: i64, to: i64, hits: &[GroupHit]) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        // First: it is what makes two nodes' scans take turns.
        let moved =
            sqlx::query("UPDATE alert_cursor SET scanned_to = $1 WHERE id = 1 AND scanned_to = $2")
                .bind(to)
                .bind(from)
                .execute(&mut *tx)
                .await?;
        if DB::rows_affected(&moved) == 0 {
            return Ok(false);
        }
        for hit in hits {
            sqlx::query(
                "INSERT INTO alert_groups (id, user_id, script_id, subject, kind, window_start, window_end, \
                 count, last_run_id, last_status, last_error, notify_first) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, CASE WHEN EXISTS (SELECT 1 \
                 FROM alert_groups p WHERE p.user_id = $2 AND p.script_id = $3 AND p.kind = $5 \
                 AND p.window_start = $12) THEN 0 ELSE 1 END) \
                 ON CONFLICT (user_id, script_id, kind, window_start) DO UPDATE SET \
                 count = alert_groups.count + excluded.count, last_run_id = excluded.last_run_id, \
                 last_status = excluded.last_status, last_error = excluded.last_error",
            )
            .bind(new_id("alr"))
            .bind(&hit.user_id)
            .bind(&hit.script_id)
            .bind(&hit.subject)
            .bind(RUN_FAILED)
            .bind(hit.window_start)
            .bind(hit.window_end)
            .bind(hit.count)
            .bind(&hit.last_run_id)
            .bind(&hit.last_status)
            .bind(&hit.last_error)
            .bind(hit.previous_start)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn due_alert_groups(&self, now: i64) -> StoreResult<Vec<AlertGroup>> {
        let rows = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM alert_groups WHERE summary_sent_at IS NULL \
             AND (next_try_at IS NULL OR next_try_at <= $1) \
             AND ((notify_first = 1 AND first_sent_at IS NULL) OR window_end <= {SCANNED_TO}) \
             ORDER BY window_start LIMIT 500"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(group_from_row).collect()
    }

    async fn claim_alert(
        &self,
        id: &str,
        message: AlertMessage,
        now: i64,
    ) -> StoreResult<Option<AlertGroup>> {
        let claim = match message {
            AlertMessage::First => {
                "UPDATE alert_groups SET first_sent_at = $1, sent_count = 1 \
                 WHERE id = $2 AND first_sent_at IS NULL AND notify_first = 1"
            }
            AlertMessage::Summary => {
                "UPDATE alert_groups SET summary_sent_at = $1 \
                 WHERE id = $2 AND summary_sent_at IS NULL \
                 AND window_end <= (SELECT scanned_to FROM alert_cursor WHERE id = 1)"
            }
        };
        let done = sqlx::query(claim)
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if DB::rows_affected(&done) == 0 {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM alert_groups WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        group_from_row(&row).map(Some)
    }

    async fn release_alert(
        &self,
        id: &str,
        message: AlertMessage,
        retry_at: i64,
    ) -> StoreResult<()> {
        let release = match message {
            AlertMessage::First => {
                "UPDATE alert_groups SET first_sent_at = NULL, sent_count = 0, \
                 attempts = attempts + 1, next_try_at = $2 WHERE id = $1"
            }
            AlertMessage::Summary => {
                "UPDATE alert_groups SET summary_sent_at = NULL, attempts = attempts + 1, \
                 next_try_at = $2 WHERE id = $1"
            }
        };
        sqlx::query(release)
            .bind(id)
            .bind(retry_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn recent_alert_groups(&self, user_id: &str, limit: i64) -> StoreResult<Vec<AlertGroup>> {
        let rows = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM alert_groups WHERE user_id = $1 \
             ORDER BY window_start DESC, id DESC LIMIT $2"
        ))
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(group_from_row).collect()
    }

    async fn claim_reconnect_alerts(&self, now: i64) -> StoreResult<Vec<(String, String)>> {
        sqlx::query(
            "DELETE FROM credential_alerts WHERE NOT EXISTS (SELECT 1 FROM credentials c \
             WHERE c.user_id = credential_alerts.user_id \
             AND c.integration_id = credential_alerts.integration_id AND c.status = 'reconnect_needed')",
        )
        .execute(&self.pool)
        .await?;
        let rows = sqlx::query(
            "SELECT DISTINCT c.user_id, c.integration_id FROM credentials c \
             WHERE c.status = 'reconnect_needed' AND NOT EXISTS (SELECT 1 FROM credential_alerts a \
             WHERE a.user_id = c.user_id AND a.integration_id = c.integration_id)",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for row in rows {
            let (user, integration): (String, String) =
                (row.try_get("user_id")?, row.try_get("integration_id")?);
            let done = sqlx::query(
                "INSERT INTO credential_alerts (user_id, integration_id, alerted_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id, integration_id) DO NOTHING",
            )
            .bind(&user)
            .bind(&integration)
            .bind(now)
            .execute(&self.pool)
            .await?;
            if DB::rows_affected(&done) > 0 {
                claimed.push((user, integration));
            }
        }
        Ok(claimed)
    }

    async fn tick_held_by(&self, script_id: &str) -> StoreResult<Option<String>> {
        // No rows unless the owner opted in and has a credential to fix.
        let rows = sqlx::query(
            "SELECT DISTINCT c.integration_id, v.metadata FROM scripts s \
             JOIN alert_settings a ON a.user_id = s.user_id AND a.script_id = '' AND a.pause_on_reconnect = 1 \
             JOIN credentials c ON c.user_id = s.user_id AND c.status = 'reconnect_needed' \
             JOIN script_versions v ON v.script_id = s.id AND v.version = s.current_version \
             WHERE s.id = $1",
        )
        .bind(script_id)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let integration: String = row.try_get("integration_id")?;
            let metadata: String = row.try_get("metadata")?;
            let metadata: serde_json::Value = serde_json::from_str(&metadata)
                .map_err(|e| StoreError::Corrupt(format!("script metadata: {e}")))?;
            let uses = metadata["integrations"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|id| *id == integration.as_str()));
            if uses {
                return Ok(Some(integration));
            }
        }
        Ok(None)
    }

    async fn insert_alert_message(
        &self,
        user_id: &str,
        script_id: &str,
        run_id: &str,
        subject: &str,
        body: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(INSERT_MESSAGE_SQL)
            .bind(new_id("msg"))
            .bind(user_id)
            .bind(script_id)
            .bind(run_id)
            .bind("alerts")
            .bind(Option::<String>::None)
            .bind(subject)
            .bind(body)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn settings_from_row<R>(row: &R) -> StoreResult<AlertSettings>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: Column<R::Database>,
    i64: Column<R::Database>,
    Option<String>: Column<R::Database>,
{
    let channels: String = row.try_get("channels")?;
    Ok(AlertSettings {
        script_id: row.try_get("script_id")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        channels: serde_json::from_str(&channels)
            .map_err(|e| StoreError::Corrupt(format!("alert channels: {e}")))?,
        slack_channel: row.try_get("slack_channel")?,
        email_to: row.try_get("email_to")?,
        email_from: row.try_get("email_from")?,
        webhook_url: row.try_get("webhook_url")?,
        webhook_nonce: row.try_get("webhook_nonce")?,
        window_secs: row.try_get("window_secs")?,
        pause_on_reconnect: row.try_get::<i64, _>("pause_on_reconnect")? != 0,
        updated_at: row.try_get("updated_at")?,
    })
}

fn group_from_row<R>(row: &R) -> StoreResult<AlertGroup>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: Column<R::Database>,
    i64: Column<R::Database>,
    Option<String>: Column<R::Database>,
    Option<i64>: Column<R::Database>,
{
    Ok(AlertGroup {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        script_id: row.try_get("script_id")?,
        subject: row.try_get("subject")?,
        kind: row.try_get("kind")?,
        window_start: row.try_get("window_start")?,
        window_end: row.try_get("window_end")?,
        count: row.try_get("count")?,
        sent_count: row.try_get("sent_count")?,
        notify_first: row.try_get::<i64, _>("notify_first")? != 0,
        last_run_id: row.try_get("last_run_id")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        first_sent_at: row.try_get("first_sent_at")?,
        summary_sent_at: row.try_get("summary_sent_at")?,
        attempts: row.try_get("attempts")?,
    })
}
