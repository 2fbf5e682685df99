-- The webhook subscriptions roost made at a provider for a user (Shopify's
-- per topic, GitHub's per repository with every topic), so they can be
-- removed when no script listens any more. A row is claimed before the
-- provider is asked (only the node that inserted it creates the
-- subscription); `remote_id` is the provider's id (JSON) once created.
CREATE TABLE webhook_subscriptions (
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    integration_id  TEXT NOT NULL,
    scope           TEXT NOT NULL,
    topics          TEXT NOT NULL,
    remote_id       TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (user_id, integration_id, scope, topics)
);
