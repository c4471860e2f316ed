-- Webhooks: the platform's endpoints, and one delivery row per (event, endpoint), written in the
-- transaction of the audit entry that reports the change (see wakili_core::webhook).
CREATE TABLE webhook_endpoints (
    id                    TEXT PRIMARY KEY,
    url                   TEXT NOT NULL,
    -- The events it receives, as `,name,name,` (wakili_core::webhook::Filter::stored).
    events                TEXT NOT NULL,
    description           TEXT NOT NULL DEFAULT '',
    -- `config` (from [[webhooks.endpoints]]) or `api`.
    source                TEXT NOT NULL CHECK (source IN ('config', 'api')),
    secret                TEXT NOT NULL,
    -- The secret before the last rotation, still signed with until previous_secret_until.
    previous_secret       TEXT,
    previous_secret_until TIMESTAMPTZ,
    enabled               BOOLEAN NOT NULL,
    disabled_reason       TEXT,
    -- Failed attempts in a row, across its deliveries; reset by a success.
    consecutive_failures  BIGINT NOT NULL DEFAULT 0,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    -- The webhook-id header: the same on every attempt and redelivery.
    event_id         TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    -- Deliveries of one consultation to one endpoint go in `seq` order (the audit chain's).
    consultation_id  TEXT,
    seq              BIGINT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'expired')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    -- Retried until retry_from + the configured window (24 h by default); a redelivery restarts it.
    retry_from       TIMESTAMPTZ NOT NULL,
    lease_owner      TEXT,
    lease_until      TIMESTAMPTZ,
    last_status      BIGINT,
    last_error       TEXT,
    last_attempt_at  TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    delivered_at     TIMESTAMPTZ,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, consultation_id, status, seq);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, id);
