-- The watch on due runs asks each node's store for the earliest time a
-- queued run waits for, several times a second: one index probe.
CREATE INDEX runs_due ON runs (not_before) WHERE status = 'queued' AND not_before IS NOT NULL;
