-- A replayed run names the run it replays (POST /v1/runs/replay). The
-- index finds a run's replays: a run replayed once is not replayed again
-- by a later replay (its replay is, if that failed too).
ALTER TABLE runs ADD COLUMN replay_of TEXT;
CREATE INDEX runs_by_replay_of ON runs (replay_of) WHERE replay_of IS NOT NULL;
