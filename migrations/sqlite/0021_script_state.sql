-- What scripts remember between runs (roost_sdk::state): JSON values by
-- key, written only with the outcome of the run that set them. `size` is
-- the entry's bytes (key and value), kept so the per-script quota is
-- counted without reading values. Expired entries read as absent and are
-- removed at the script's next state write.
CREATE TABLE script_state (
    script_id   TEXT NOT NULL REFERENCES scripts(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    size        BIGINT NOT NULL,
    expires_at  BIGINT,
    updated_at  BIGINT NOT NULL,
    -- The run whose success wrote it; NULL when written through the API.
    run_id      TEXT,
    PRIMARY KEY (script_id, key)
);
CREATE INDEX script_state_expiry ON script_state (script_id, expires_at)
    WHERE expires_at IS NOT NULL;

-- Each script's entries and bytes, the quota's count. Every state write
-- takes this row first, so the writes of one script take turns.
CREATE TABLE script_state_usage (
    script_id  TEXT PRIMARY KEY REFERENCES scripts(id) ON DELETE CASCADE,
    keys       BIGINT NOT NULL,
    bytes      BIGINT NOT NULL
);
