-- A setup link works until a credential is stored through it: its signature
-- is recorded here then, and the link refused afterwards. Rows outlive the
-- link's own expiry by nothing; they are swept when it has passed.
CREATE TABLE used_setup_links (
    sig         TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
-- The link an OAuth authorization started from, to mark it used when the
-- connection completes.
ALTER TABLE oauth_states ADD COLUMN link_sig TEXT;
