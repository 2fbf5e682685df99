-- The durable run queue and run history. A run is `queued`, claimed by a
-- worker (`running`, with a heartbeat), and ends `succeeded`, `failed`,
-- `timed_out`, `limit_exceeded` or `cancelled`. Runs outlive their script
-- (history), so there is no foreign key to scripts.
CREATE TABLE runs (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    script_id         TEXT NOT NULL,
    script_version    BIGINT NOT NULL,
    handler           TEXT,
    trigger_kind      TEXT NOT NULL,
    trigger_spec      TEXT NOT NULL,
    payload           TEXT NOT NULL,
    status            TEXT NOT NULL,
    attempt           BIGINT NOT NULL,
    first_run_id      TEXT,
    worker_id         TEXT,
    heartbeat_at      BIGINT,
    queued_at         BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    exit_code         BIGINT,
    duration_ms       BIGINT,
    error             TEXT,
    stdout            BYTEA,
    stderr            BYTEA,
    stdout_truncated  BIGINT NOT NULL DEFAULT 0,
    stderr_truncated  BIGINT NOT NULL DEFAULT 0,
    output_cap        BIGINT
);
CREATE INDEX runs_queue ON runs (status, queued_at);
CREATE INDEX runs_by_user ON runs (user_id, queued_at);
CREATE INDEX runs_by_script ON runs (script_id, status);
