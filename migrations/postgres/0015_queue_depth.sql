-- Each user's number of queued runs, kept by triggers, so the queue cap
-- checked on every event and manual run reads a few rows. Counting the
-- queued runs instead walked the whole (user, status) index range, and
-- fetched heap rows wherever the visibility map was behind: 11 ms per event
-- at 7,000 queued, which held event ingest to about 700 a second.
--
-- One counter row per user would make every run write of that user wait
-- for the row lock of the transaction before it, through that one's commit,
-- across every node. So each user has 16 counter rows (shards) and each
-- database session adds to the one its backend's pid picks: concurrent
-- transactions touch different rows. The count is their sum; a single
-- shard can go negative (a run queued through one session and claimed
-- through another), the sum cannot.
CREATE TABLE queue_depth (
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    shard    INTEGER NOT NULL,
    queued   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, shard)
);

INSERT INTO queue_depth (user_id, shard, queued)
    SELECT u.id, s, 0 FROM users u, generate_series(0, 15) s;
UPDATE queue_depth d SET queued = c.n
    FROM (SELECT user_id, COUNT(*) AS n FROM runs WHERE status = 'queued' GROUP BY user_id) c
    WHERE d.user_id = c.user_id AND d.shard = 0;

CREATE FUNCTION queue_depth_new_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_depth (user_id, shard, queued)
        SELECT NEW.id, s, 0 FROM generate_series(0, 15) s
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

-- Adds `TG_ARGV[0]` (+1 or -1) to the user's shard of this session. Only
-- an UPDATE: while a user is being deleted its rows may already be gone,
-- and then there is nothing left to count.
CREATE FUNCTION queue_depth_add() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    uid TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        uid := OLD.user_id;
    ELSE
        uid := NEW.user_id;
    END IF;
    UPDATE queue_depth SET queued = queued + TG_ARGV[0]::BIGINT
        WHERE user_id = uid AND shard = pg_backend_pid() % 16;
    RETURN NULL;
END $$;

CREATE TRIGGER queue_depth_new_user AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION queue_depth_new_user();

CREATE TRIGGER queue_depth_run_queued AFTER INSERT ON runs
    FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION queue_depth_add('1');

CREATE TRIGGER queue_depth_run_left_queue AFTER UPDATE OF status ON runs
    FOR EACH ROW WHEN (OLD.status = 'queued' AND NEW.status <> 'queued')
    EXECUTE FUNCTION queue_depth_add('-1');

CREATE TRIGGER queue_depth_run_requeued AFTER UPDATE OF status ON runs
    FOR EACH ROW WHEN (OLD.status <> 'queued' AND NEW.status = 'queued')
    EXECUTE FUNCTION queue_depth_add('1');

CREATE TRIGGER queue_depth_run_deleted AFTER DELETE ON runs
    FOR EACH ROW WHEN (OLD.status = 'queued') EXECUTE FUNCTION queue_depth_add('-1');
