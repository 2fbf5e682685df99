-- Bytes of payload each user's runs keep (an event's payload is copied
-- into every run it starts, and kept for the retention period), kept by
-- the same triggers as the queued count, so the cap on them is checked
-- from the row the queue cap already reads. A run's payload never changes,
-- so only inserts and deletes count.
ALTER TABLE queue_depth ADD COLUMN payload_bytes INTEGER NOT NULL DEFAULT 0;

UPDATE queue_depth SET payload_bytes =
    (SELECT COALESCE(SUM(length(CAST(r.payload AS BLOB))), 0) FROM runs r WHERE r.user_id = queue_depth.user_id);

DROP TRIGGER queue_depth_run_queued;
CREATE TRIGGER queue_depth_run_inserted AFTER INSERT ON runs BEGIN
    UPDATE queue_depth SET queued = queued + (NEW.status = 'queued'),
        payload_bytes = payload_bytes + length(CAST(NEW.payload AS BLOB))
        WHERE user_id = NEW.user_id;
END;

DROP TRIGGER queue_depth_run_deleted;
CREATE TRIGGER queue_depth_run_deleted AFTER DELETE ON runs BEGIN
    UPDATE queue_depth SET queued = queued - (OLD.status = 'queued'),
        payload_bytes = payload_bytes - length(CAST(OLD.payload AS BLOB))
        WHERE user_id = OLD.user_id;
END;
