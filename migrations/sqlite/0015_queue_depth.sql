-- Each user's number of queued runs, kept by triggers, so the queue cap
-- checked on every event and manual run reads one row. Counting the
-- queued runs instead walked the whole (user, status) index range: at a
-- few thousand queued it took most of the readers' time and held event
-- ingest to about 6,000 a second.
CREATE TABLE queue_depth (
    user_id  TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    queued   INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO queue_depth (user_id, queued)
    SELECT id, (SELECT COUNT(*) FROM runs r WHERE r.user_id = u.id AND r.status = 'queued')
    FROM users u;

CREATE TRIGGER queue_depth_new_user AFTER INSERT ON users BEGIN
    INSERT OR IGNORE INTO queue_depth (user_id, queued) VALUES (NEW.id, 0);
END;

CREATE TRIGGER queue_depth_run_queued AFTER INSERT ON runs WHEN NEW.status = 'queued' BEGIN
    UPDATE queue_depth SET queued = queued + 1 WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER queue_depth_run_left_queue AFTER UPDATE OF status ON runs
    WHEN OLD.status = 'queued' AND NEW.status <> 'queued' BEGIN
    UPDATE queue_depth SET queued = queued - 1 WHERE user_id = OLD.user_id;
END;

CREATE TRIGGER queue_depth_run_requeued AFTER UPDATE OF status ON runs
    WHEN OLD.status <> 'queued' AND NEW.status = 'queued' BEGIN
    UPDATE queue_depth SET queued = queued + 1 WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER queue_depth_run_deleted AFTER DELETE ON runs WHEN OLD.status = 'queued' BEGIN
    UPDATE queue_depth SET queued = queued - 1 WHERE user_id = OLD.user_id;
END;
