-- Users and their API tokens (stored as SHA-256 hashes, never in clear).
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL
);

-- The integration registry as loaded at startup (one row per integration).
CREATE TABLE integration_definitions (
    integration_id  TEXT NOT NULL,
    version         TEXT NOT NULL,
    definition      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX integration_definitions_id ON integration_definitions (integration_id);

-- Credentials, AES-256-GCM encrypted; the associated data binds each
-- ciphertext to (user_id, integration_id, cred_key, key_id).
CREATE TABLE credentials (
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    integration_id  TEXT NOT NULL,
    cred_key        TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    nonce           BYTEA NOT NULL,
    ciphertext      BYTEA NOT NULL,
    placement       TEXT,
    status          TEXT NOT NULL DEFAULT 'connected',
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (user_id, integration_id, cred_key)
);

-- Scripts, their immutable versions, and the triggers of the current version.
CREATE TABLE scripts (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    current_version  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE script_versions (
    script_id     TEXT NOT NULL REFERENCES scripts(id) ON DELETE CASCADE,
    version       BIGINT NOT NULL,
    content_hash  TEXT NOT NULL,
    component     BYTEA NOT NULL,
    metadata      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (script_id, version)
);

CREATE TABLE triggers (
    script_id  TEXT NOT NULL REFERENCES scripts(id) ON DELETE CASCADE,
    handler    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    timezone   TEXT,
    PRIMARY KEY (script_id, handler)
);
