-- The `messaging` integration's outbox: messages scripts leave for their
-- user, listed by GET /v1/messages. They outlive the script and the run
-- that sent them, so those are plain ids rather than foreign keys.
CREATE TABLE messages (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    script_id   TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    channel     TEXT,
    recipient   TEXT,
    subject     TEXT,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX messages_by_user ON messages (user_id, created_at);
