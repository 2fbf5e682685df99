-- A run's page lists every attempt of it: retries name their first run.
-- First attempts have none, so only retries are in this index.
CREATE INDEX runs_by_first_run ON runs (first_run_id) WHERE first_run_id IS NOT NULL;
