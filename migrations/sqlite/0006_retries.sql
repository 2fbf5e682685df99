-- Retry policy per script, and a not-before time for retries waiting out
-- their backoff.
ALTER TABLE scripts ADD COLUMN max_retries INTEGER NOT NULL DEFAULT 2;
ALTER TABLE scripts ADD COLUMN retry_on_limits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN not_before INTEGER;
