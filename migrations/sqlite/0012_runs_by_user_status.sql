-- The queued-runs cap counts a user's queued runs on every event and manual
-- run; without this index that count scans the user's whole run history.
CREATE INDEX runs_by_user_status ON runs (user_id, status);
