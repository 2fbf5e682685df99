-- Host-mediated integration calls a run made (integrations::call): which
-- method, how it ended, how long it took and how many attempts it needed.
-- Never the input, the output or the credential. They go with their run.
CREATE TABLE method_calls (
    id           TEXT PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    integration  TEXT NOT NULL,
    method       TEXT NOT NULL,
    status       TEXT NOT NULL,
    http_status  BIGINT,
    duration_ms  BIGINT NOT NULL,
    attempts     BIGINT NOT NULL,
    refreshed    BOOLEAN NOT NULL,
    error        TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX method_calls_by_run ON method_calls (run_id, created_at);
