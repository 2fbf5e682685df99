-- Alerts: what a user is told when a run fails for good, times out or hits
-- a limit, or a credential needs reconnecting. `alert_settings` holds the
-- user's default (script_id '') and per-script overrides. Failures are
-- grouped per script into windows (`alert_groups`, one row per window):
-- the first failure after a quiet window is sent at once, the rest of a
-- window as one summary with its count. One node at a time scans the
-- runs that failed since `alert_cursor.scanned_to` (a compare-and-set).
CREATE TABLE alert_settings (
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    script_id     TEXT NOT NULL,
    enabled       BIGINT NOT NULL,
    channels      TEXT NOT NULL,
    slack_channel TEXT,
    email_to      TEXT,
    email_from    TEXT,
    webhook_url   TEXT,
    webhook_nonce TEXT,
    window_secs   BIGINT NOT NULL,
    -- Hold the cron ticks of scripts using a credential to reconnect.
    pause_on_reconnect BIGINT NOT NULL DEFAULT 0,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (user_id, script_id)
);

CREATE TABLE alert_groups (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    script_id       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    window_start    BIGINT NOT NULL,
    window_end      BIGINT NOT NULL,
    count           BIGINT NOT NULL,
    sent_count      BIGINT NOT NULL DEFAULT 0,
    notify_first    BIGINT NOT NULL,
    last_run_id     TEXT NOT NULL,
    last_status     TEXT NOT NULL,
    last_error      TEXT,
    first_sent_at   BIGINT,
    summary_sent_at BIGINT,
    -- Failed sends of the pending message, and when it goes again.
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_try_at     BIGINT,
    UNIQUE (user_id, script_id, kind, window_start)
);
CREATE INDEX alert_groups_by_user ON alert_groups (user_id, window_start);
CREATE INDEX alert_groups_unsent ON alert_groups (window_end) WHERE summary_sent_at IS NULL;

CREATE TABLE alert_cursor (
    id         BIGINT PRIMARY KEY,
    scanned_to BIGINT NOT NULL
);

-- A credential that needs reconnecting is told once, until it is fixed.
CREATE TABLE credential_alerts (
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    integration_id TEXT NOT NULL,
    alerted_at     BIGINT NOT NULL,
    PRIMARY KEY (user_id, integration_id)
);

CREATE INDEX runs_failed_at ON runs (finished_at) WHERE status IN ('failed', 'timed_out', 'limit_exceeded');

-- Work one node of a cluster does at a time (the background refresh of
-- OAuth tokens): held by `holder` until `until`, then free to take.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
CREATE INDEX credentials_expiring ON credentials (expires_at) WHERE expires_at IS NOT NULL;
