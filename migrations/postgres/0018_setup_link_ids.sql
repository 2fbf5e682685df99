-- Setup links carry a random id of their own (`link=`) and are spent by that
-- id, in the transaction that stores the credential they connect: a second
-- use, a concurrent one, or a re-spelled signature finds the id taken.
-- Links signed before this change no longer verify, so their marks go.
DROP TABLE used_setup_links;
CREATE TABLE spent_setup_links (
    link_id     TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
-- The link an OAuth authorization started from, spent when it completes.
ALTER TABLE oauth_states RENAME COLUMN link_sig TO link_id;
