-- Named API tokens: an id to list and revoke them by, a name unique per
-- user, scopes (a comma-separated subset of read, deploy, run, events), an
-- optional expiry and the time of their last use (written at most once a
-- minute). Tokens made before this are each user's `default`, with every
-- scope. A dashboard session remembers the token it was signed in with,
-- so revoking the token ends it too.
ALTER TABLE api_tokens ADD COLUMN id TEXT;
ALTER TABLE api_tokens ADD COLUMN name TEXT NOT NULL DEFAULT 'default';
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read,deploy,run,events';
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
-- A random id: nothing of the token's hash shows in listings.
UPDATE api_tokens SET id = 'tok_' || lower(hex(randomblob(12))) WHERE id IS NULL;
CREATE UNIQUE INDEX api_tokens_by_id ON api_tokens (id);
CREATE UNIQUE INDEX api_tokens_by_user_name ON api_tokens (user_id, name);
ALTER TABLE web_sessions ADD COLUMN token_id TEXT;
-- Sessions from before cannot be tied to a token: signed out.
DELETE FROM web_sessions WHERE token_id IS NULL;
CREATE INDEX web_sessions_by_token ON web_sessions (token_id);
