-- The provider account a connection belongs to, where the provider says:
-- for Slack, the workspace (team) and app the user installed. A webhook
-- delivery for a user must come from that account.
CREATE TABLE connected_accounts (
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    integration_id  TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    app_id          TEXT,
    connected_at    BIGINT NOT NULL,
    PRIMARY KEY (user_id, integration_id)
);
-- Webhook deliveries by the provider's own id, across users: a signed
-- delivery replayed to another user's URL finds its id taken. Swept with
-- the events' idempotency window.
CREATE TABLE webhook_deliveries (
    source       TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (source, delivery_id)
);
CREATE INDEX webhook_deliveries_by_age ON webhook_deliveries (received_at);
