-- The URL of each HTTP-triggered handler: an unguessable token per
-- (script, handler), kept across deploys and rollbacks, replaced when the
-- user rotates it, gone with the script. An `hmac` handler's signing
-- secret, once its owner set one, is sealed like a credential (AES-GCM
-- under master key `secret_key_id`, bound to the user, script and handler).
CREATE TABLE http_endpoints (
    token          TEXT PRIMARY KEY,
    script_id      TEXT NOT NULL REFERENCES scripts(id) ON DELETE CASCADE,
    handler        TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    secret_key_id  TEXT,
    secret_nonce   BYTEA,
    secret         BYTEA,
    UNIQUE (script_id, handler)
);

-- What an HTTP-triggered run answered its caller, written in the same
-- transaction as the run's success.
CREATE TABLE run_http_responses (
    run_id   TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    status   BIGINT NOT NULL,
    headers  TEXT NOT NULL,
    body     BYTEA NOT NULL
);
