-- The dashboard's chart counts one user's runs that ended in the last hour,
-- minute by minute. No index held a user's runs by their end: the only
-- bound was queued_at, and a run can end long after it was queued (a
-- backlog, a retry's backoff), so the chart would have read the user's
-- whole history or missed runs. Partial: a run enters the index once, when
-- it ends (one insert on the finish, no rewrite as its status changes), and
-- queued and running runs are not in it.
CREATE INDEX runs_by_user_finished ON runs (user_id, finished_at) WHERE finished_at IS NOT NULL;
