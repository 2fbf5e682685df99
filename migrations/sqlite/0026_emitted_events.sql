-- Events scripts emit (`roost_sdk::events::emit`): each run an event
-- starts names it, and each event the run that emitted it, so a chain reads
-- both ways. `chain_depth` counts the links from an event that came from
-- outside (0); an event past the limit is kept with `stopped` and starts
-- nothing.
ALTER TABLE runs ADD COLUMN cause_event_id TEXT;
ALTER TABLE runs ADD COLUMN chain_depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN source_run_id TEXT;
ALTER TABLE events ADD COLUMN chain_depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN stopped TEXT;
