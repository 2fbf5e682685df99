-- The nodes of a cluster, as each last reported itself: the operator view
-- (GET /v1/cluster). A node writes its row every few seconds while it runs.
CREATE TABLE nodes (
    id            TEXT PRIMARY KEY,
    address       TEXT NOT NULL,
    version       TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL
);
