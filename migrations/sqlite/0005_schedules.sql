-- One row per cron tick that was handled: the primary key makes each tick
-- of each schedule become at most one run, whichever node or restart sees it.
CREATE TABLE schedule_ticks (
    script_id   TEXT NOT NULL,
    handler     TEXT NOT NULL,
    tick_at     INTEGER NOT NULL,
    run_id      TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (script_id, handler, tick_at)
);

-- Per-schedule policies; a schedule without a row uses the defaults.
CREATE TABLE schedule_settings (
    script_id  TEXT NOT NULL REFERENCES scripts(id) ON DELETE CASCADE,
    handler    TEXT NOT NULL,
    paused     INTEGER NOT NULL DEFAULT 0,
    catch_up   TEXT NOT NULL DEFAULT 'skip',
    overlap    TEXT NOT NULL DEFAULT 'skip',
    PRIMARY KEY (script_id, handler)
);
