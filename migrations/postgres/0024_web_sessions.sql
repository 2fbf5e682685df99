-- Dashboard sign-ins: one row per browser session, found by the SHA-256 of
-- its cookie (the cookie itself is never stored). The CSRF token is the
-- session's own; it is not a secret from the signed-in browser.
CREATE TABLE web_sessions (
    id_hash     TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
