-- Listing a user's runs in one status, newest first (the API's
-- `?status=`, and anyone waiting for a user's queue to empty), read every
-- run of the user in that status and sorted them. In this order the scan
-- stops at the page's last row. The queue cap no longer counts through this
-- index (queue_depth, 0015).
DROP INDEX runs_by_user_status;
CREATE INDEX runs_by_user_status ON runs (user_id, status, queued_at, id);
