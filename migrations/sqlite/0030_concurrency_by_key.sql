-- A handler with a concurrency limit per key: its runs carry the key
-- (`<script>/<handler>/<hash of the value>`) and the limit, and a claim
-- counts the key's running runs. `wait_reason` says why a run waited to
-- start (`run_at`, `retry`, `debounce`, `throttle`, `concurrency`).
ALTER TABLE runs ADD COLUMN concurrency_key TEXT;
ALTER TABLE runs ADD COLUMN concurrency_limit INTEGER;
ALTER TABLE runs ADD COLUMN wait_reason TEXT;
CREATE INDEX runs_concurrency ON runs (concurrency_key, status) WHERE concurrency_key IS NOT NULL;
