-- When an OAuth access token expires (Unix ms); NULL for values that do not.
ALTER TABLE credentials ADD COLUMN expires_at BIGINT;

-- Pending OAuth authorizations: single use (deleted on callback), short
-- lived, the PKCE verifier encrypted like a credential.
CREATE TABLE oauth_states (
    state           TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    integration_id  TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    nonce           BYTEA NOT NULL,
    ciphertext      BYTEA NOT NULL,
    redirect_uri    TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
