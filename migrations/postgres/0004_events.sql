-- Events received, kept for the idempotency window: an event id seen again
-- within it is acknowledged without new runs.
CREATE TABLE events (
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    source       TEXT,
    received_at  BIGINT NOT NULL,
    run_ids      TEXT NOT NULL,
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX events_received ON events (received_at);
