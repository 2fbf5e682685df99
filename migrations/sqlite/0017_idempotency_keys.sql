-- Manual runs requested with an `Idempotency-Key` header: the first request
-- with a key queues a run, and a repeat within the window (a client retrying
-- after a timeout) answers with that run instead of queuing another. The
-- request's hash tells a repeat from a different request reusing the key.
CREATE TABLE idempotency_keys (
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    idem_key      TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
-- The purge forgets keys past the window.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
