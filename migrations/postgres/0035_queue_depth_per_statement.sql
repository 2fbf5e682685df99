-- The queue-depth shards kept once per statement instead of once per run:
-- a row trigger ran a PL/pgSQL call and an UPDATE of the shard row for every
-- run queued and every run claimed, about half of what PostgreSQL spent
-- writing a run (EXPLAIN ANALYZE over 2,000 runs: 50-70 µs per run queued
-- and 45 µs per run claimed, against 15-30 µs for the rows themselves;
-- BENCHMARKS.md, session 26). Events, claims and finishes move several
-- runs per statement, so one call per statement costs a fraction.

-- Runs stored by one statement: their payloads' bytes, and those queued,
-- to this session's shard of each user.
CREATE FUNCTION queue_depth_runs_stored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE queue_depth d SET queued = d.queued + added.queued,
        payload_bytes = d.payload_bytes + added.bytes
        FROM (SELECT user_id, COUNT(*) FILTER (WHERE status = 'queued') AS queued,
                     COALESCE(SUM(octet_length(payload)), 0) AS bytes
              FROM stored_runs GROUP BY user_id) added
        WHERE d.user_id = added.user_id AND d.shard = pg_backend_pid() % 16;
    RETURN NULL;
END $$;

-- Runs that left the queue (claimed, cancelled) or came back to it
-- (retried, given back, an orphan re-queued) in one statement. A trigger
-- with transition tables cannot name its columns (`UPDATE OF status`), so
-- it sees every update of runs and counts only those whose status crossed
-- `queued` either way.
CREATE FUNCTION queue_depth_runs_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE queue_depth d SET queued = d.queued + moved.n
        FROM (SELECT n.user_id, SUM(CASE WHEN n.status = 'queued' THEN 1 ELSE -1 END) AS n
              FROM old_runs o JOIN new_runs n ON n.id = o.id
              WHERE (o.status = 'queued') <> (n.status = 'queued')
              GROUP BY n.user_id) moved
        WHERE moved.n <> 0 AND d.user_id = moved.user_id AND d.shard = pg_backend_pid() % 16;
    RETURN NULL;
END $$;

DROP TRIGGER queue_depth_run_inserted ON runs;
DROP TRIGGER queue_depth_run_left_queue ON runs;
DROP TRIGGER queue_depth_run_requeued ON runs;

CREATE TRIGGER queue_depth_runs_inserted AFTER INSERT ON runs
    REFERENCING NEW TABLE AS stored_runs
    FOR EACH STATEMENT EXECUTE FUNCTION queue_depth_runs_stored();

CREATE TRIGGER queue_depth_runs_updated AFTER UPDATE ON runs
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION queue_depth_runs_moved();
