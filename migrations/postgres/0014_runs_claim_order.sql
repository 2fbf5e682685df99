-- Claims take the oldest queued run, ordered by (queued_at, id). With the
-- index on (status, queued_at) alone, the id tie-break made the database
-- sort every queued run (and check each one's script cap) on every claim:
-- a claim cost grew with the queue (11 ms at 5,000 queued on PostgreSQL).
-- In index order the scan stops at the first claimable run.
CREATE INDEX runs_claim_order ON runs (status, queued_at, id);
DROP INDEX runs_queue;
