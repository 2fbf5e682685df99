-- Flow control declared per handler (`flow`, JSON; today `debounce`): a
-- debounced handler's runs carry their key (`<script>/<handler>/<value>`),
-- and at most one run per key waits in the queue, so a burst of events
-- for one key updates that run instead of adding more.
ALTER TABLE triggers ADD COLUMN flow TEXT;
ALTER TABLE runs ADD COLUMN flow_key TEXT;
CREATE UNIQUE INDEX runs_debounced ON runs (flow_key) WHERE status = 'queued';
