-- Who touched which credential, when, and for which run: reads for runs,
-- changes, OAuth connections and refreshes, key rotations. Never a value.
CREATE TABLE audit (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    action       TEXT NOT NULL,
    integration  TEXT,
    run_id       TEXT,
    detail       TEXT,
    at           BIGINT NOT NULL
);
CREATE INDEX audit_by_user ON audit (user_id, at);
