-- A worker's claim in one call: the transaction of four round trips
-- (begin, candidates, take, commit) and the look at other users' queues
-- before it become one statement (docs/postgres-queue.md). And the
-- queue-depth shards no longer kept by a trigger on every update of runs:
-- the statement trigger of 0035 ran a PL/pgSQL call and a join of its
-- transition tables on every finish and heartbeat too, 200-300 µs a
-- statement on these machines (BENCHMARKS.md, session 27).

-- Claims for `p_worker` at `p_now` up to `p_runs` runs, nor more than a
-- `p_workers`th of the queue (rounded up), the oldest first: runs before
-- their backoff, of a script whose running runs `p_script_limit` workers
-- hold, of a key at its limit, of the users in `p_skip_users` (a JSON
-- array), and those another claim holds locked are passed over. Answers
-- with the runs claimed, now running under `p_worker`.
--
-- Candidates are read in the claim index's order whatever the statistics
-- say (`enable_sort`, `enable_bitmapscan`): right after a burst of events
-- the planner still believes the queue empty, fetches every queued run,
-- counts each one's script's running runs, and sorts; in index order the
-- scan stops at the first claimable run (docs/store-decisions.md).
--
-- The candidates' scripts' advisory locks are taken in the locks' order (no
-- two claims wait on each other in a circle) and held to the commit; every
-- later statement here reads a new snapshot, so it sees the claims that
-- committed while this one waited for the locks.
--
-- The commit does not wait for the WAL to reach the disk: the scripts'
-- locks are held until it, and every claim of a script would queue behind
-- a durable commit's flush. If PostgreSQL itself crashes within a fraction
-- of a second of a claim, the run comes back `queued` and may start again
-- elsewhere, while the first worker stops at its next heartbeat, which no
-- longer finds the run its own: the at-least-once a crashed node already
-- gives. A finish commits durably, and with it every earlier claim.
CREATE FUNCTION claim_runs(p_worker TEXT, p_now BIGINT, p_script_limit BIGINT,
    p_skip_users JSONB, p_runs BIGINT, p_workers FLOAT8)
RETURNS SETOF runs LANGUAGE plpgsql
SET enable_sort = off SET enable_bitmapscan = off AS $$
DECLARE
    c_ids TEXT[];
    c_scripts TEXT[];
    c_keys TEXT[];
    taken TEXT[] := '{}';
    -- Scripts whose running runs the update checks against the cap.
    cap_scripts TEXT[] := '{}';
    cand RECORD;
    held BIGINT;
    mine_scripts JSONB := '{}';
    mine_keys JSONB := '{}';
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    -- With some users' runs left out, first whether anyone else's wait: a
    -- shard above zero (a user's shards can go below zero one by one, never
    -- all, so this errs only towards yes).
    IF p_skip_users <> '[]'::jsonb AND NOT EXISTS (SELECT 1 FROM queue_depth
        WHERE queued > 0 AND user_id NOT IN (SELECT jsonb_array_elements_text(p_skip_users))) THEN
        RETURN;
    END IF;

    WITH capped AS MATERIALIZED (
        SELECT w.script_id FROM (SELECT DISTINCT r.script_id, r.worker_id FROM runs r
            WHERE r.status = 'running') w GROUP BY w.script_id HAVING COUNT(*) >= p_script_limit),
    c AS MATERIALIZED (
        SELECT q.id, q.script_id, q.concurrency_key, q.queued_at FROM runs q
        WHERE q.status = 'queued' AND (q.not_before IS NULL OR q.not_before <= p_now)
        AND q.script_id NOT IN (SELECT capped.script_id FROM capped)
        AND (q.concurrency_key IS NULL OR (SELECT COUNT(DISTINCT k.worker_id) FROM runs k
            WHERE k.concurrency_key = q.concurrency_key AND k.status = 'running') < q.concurrency_limit)
        AND q.user_id NOT IN (SELECT jsonb_array_elements_text(p_skip_users))
        ORDER BY q.queued_at, q.id
        LIMIT LEAST(p_runs, GREATEST(1, CEIL((SELECT COALESCE(SUM(queued), 0) FROM queue_depth)::float8
            / p_workers)))::int
        FOR UPDATE SKIP LOCKED),
    locks AS MATERIALIZED (
        SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtext(c.script_id)::int8 AS h FROM c
            ORDER BY h OFFSET 0) s)
    SELECT array_agg(c.id ORDER BY c.queued_at, c.id), array_agg(c.script_id ORDER BY c.queued_at, c.id),
        array_agg(c.concurrency_key ORDER BY c.queued_at, c.id)
    INTO c_ids, c_scripts, c_keys
    FROM c WHERE (SELECT COUNT(*) FROM locks) >= 0;
    IF c_ids IS NULL THEN
        RETURN;
    END IF;

    IF array_remove(c_keys, NULL) = '{}' THEN
        -- No concurrency keys: the update itself leaves out the scripts
        -- whose running runs other workers hold at the cap.
        taken := c_ids;
        cap_scripts := c_scripts;
    ELSE
        -- The keys' locks, in order, after the scripts' (one order for
        -- every claim).
        PERFORM pg_advisory_xact_lock(1, h) FROM (SELECT DISTINCT hashtext(k) AS h
            FROM unnest(c_keys) k WHERE k IS NOT NULL ORDER BY h OFFSET 0) s;
        -- In queue order, each within its script's cap and its key's limit.
        -- The worker runs what it is handed one at a time, so it counts
        -- once against each, and it holds a key's runs in the key's order
        -- (a due run of the key ahead, locked by another claim, holds the
        -- candidate back).
        FOR cand IN
            SELECT q.id, q.script_id, q.concurrency_key AS k, COALESCE(q.concurrency_limit, 1) AS lim,
                (SELECT COUNT(DISTINCT r.worker_id) FROM runs r
                    WHERE r.script_id = q.script_id AND r.status = 'running') AS script_running,
                (SELECT COUNT(DISTINCT r.worker_id) FROM runs r
                    WHERE r.concurrency_key = q.concurrency_key AND r.status = 'running') AS key_running,
                (SELECT COUNT(*) FROM runs o WHERE o.concurrency_key = q.concurrency_key
                    AND o.status = 'queued' AND (o.not_before IS NULL OR o.not_before <= p_now)
                    AND (o.queued_at, o.id) < (q.queued_at, q.id)) AS ahead
            FROM unnest(c_ids) WITH ORDINALITY AS u(id, n) JOIN runs q ON q.id = u.id
            ORDER BY u.n
        LOOP
            IF NOT mine_scripts ? cand.script_id AND cand.script_running >= p_script_limit THEN
                CONTINUE;
            END IF;
            IF cand.k IS NOT NULL THEN
                held := COALESCE((mine_keys ->> cand.k)::bigint, 0);
                IF cand.ahead > held OR (held = 0 AND cand.key_running >= cand.lim) THEN
                    CONTINUE;
                END IF;
                mine_keys := jsonb_set(mine_keys, ARRAY[cand.k], to_jsonb(held + 1));
            END IF;
            mine_scripts := jsonb_set(mine_scripts, ARRAY[cand.script_id],
                to_jsonb(COALESCE((mine_scripts ->> cand.script_id)::bigint, 0) + 1));
            taken := taken || cand.id;
        END LOOP;
        IF taken = '{}' THEN
            RETURN;
        END IF;
    END IF;

    -- The runs taken, each if still queued, and their users' queue depths
    -- (this session's shard) in the same statement, which
    -- `queue_depth_run_claimed` therefore passes over.
    PERFORM set_config('roost.claims_counted', 'on', true);
    RETURN QUERY WITH claimed AS (
        UPDATE runs SET status = 'running', worker_id = p_worker, started_at = p_now, heartbeat_at = p_now
        WHERE runs.id = ANY(taken) AND runs.status = 'queued'
        AND runs.script_id NOT IN (SELECT w.script_id FROM (SELECT DISTINCT r.script_id, r.worker_id
            FROM runs r WHERE r.status = 'running' AND r.script_id = ANY(cap_scripts)
            AND r.worker_id <> p_worker) w GROUP BY w.script_id HAVING COUNT(*) >= p_script_limit)
        RETURNING runs.*),
    left_queue AS (
        UPDATE queue_depth d SET queued = d.queued - n.n
        FROM (SELECT claimed.user_id, COUNT(*) AS n FROM claimed GROUP BY claimed.user_id) n
        WHERE d.user_id = n.user_id AND d.shard = pg_backend_pid() % 16)
    SELECT * FROM claimed;
    PERFORM set_config('roost.claims_counted', 'off', true);
END $$;

-- Runs that leave the queue other than by a claim (cancelled) or come back
-- to it (given back, an orphan queued again): a row trigger each, whose
-- condition PostgreSQL checks without calling anything, so a finish or a
-- heartbeat costs no call. A claim (queued to running) counts itself above;
-- runs queued by an insert are counted per statement (0035).
DROP TRIGGER queue_depth_runs_updated ON runs;
DROP FUNCTION queue_depth_runs_moved();

CREATE TRIGGER queue_depth_run_left_queue AFTER UPDATE OF status ON runs
    FOR EACH ROW WHEN (OLD.status = 'queued' AND NEW.status NOT IN ('queued', 'running'))
    EXECUTE FUNCTION queue_depth_add('-1');

CREATE TRIGGER queue_depth_run_requeued AFTER UPDATE OF status ON runs
    FOR EACH ROW WHEN (OLD.status <> 'queued' AND NEW.status = 'queued')
    EXECUTE FUNCTION queue_depth_add('1');

-- A claim made outside `claim_runs`: by a node still running the code from
-- before this migration, while a cluster's nodes are upgraded one by one.
CREATE TRIGGER queue_depth_run_claimed AFTER UPDATE OF status ON runs
    FOR EACH ROW WHEN (OLD.status = 'queued' AND NEW.status = 'running'
        AND current_setting('roost.claims_counted', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION queue_depth_add('-1');
