-- The running runs, by script and worker: a claim reads which scripts are
-- at their concurrency cap (workers holding runs of each) once per claim.
-- Through (status, ...) indexes that read walked every entry a finished
-- run left under 'running' until vacuum; this index holds running runs only.
CREATE INDEX runs_running ON runs (script_id, worker_id) WHERE status = 'running';
