-- A throttled handler's runs carry their key (`<script>/<handler>/<hash of
-- the value>`) and the time their turn comes (`not_before`): the next run
-- of a key reads the latest turns to find its own.
ALTER TABLE runs ADD COLUMN throttle_key TEXT;
CREATE INDEX runs_throttled ON runs (throttle_key, not_before) WHERE throttle_key IS NOT NULL;
