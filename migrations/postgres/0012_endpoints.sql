-- Outbound lifecycle webhooks (host/src/endpoints): the endpoints applications register per
-- tenant, the messages belfry owes them (one per lifecycle event and subscribed endpoint), and
-- every attempt to deliver one.

-- `enabled` is 0 once a run of failures disabled the endpoint (or an operator did); it is
-- turned on again by hand only. `failure_streak` counts failed attempts since the last success.
CREATE TABLE endpoints (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    url             TEXT NOT NULL,
    description     TEXT,
    events          TEXT NOT NULL,
    secret          TEXT NOT NULL,
    enabled         BIGINT NOT NULL,
    disabled_reason TEXT,
    disabled_at     TEXT,
    failure_streak  BIGINT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX endpoints_tenant ON endpoints (tenant, enabled);

-- `id` is the `webhook-id` every attempt carries, so a receiver can drop a repeat.
CREATE TABLE endpoint_messages (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    delivery_id     TEXT,
    status          TEXT NOT NULL,
    status_reason   TEXT,
    attempts        BIGINT NOT NULL,
    next_attempt_at TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX endpoint_messages_endpoint ON endpoint_messages (endpoint_id, id);
CREATE INDEX endpoint_messages_delivery ON endpoint_messages (delivery_id);

CREATE TABLE endpoint_attempts (
    id          TEXT PRIMARY KEY,
    message_id  TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    started_at  TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status_code BIGINT,
    error       TEXT,
    response    TEXT
);
CREATE INDEX endpoint_attempts_message ON endpoint_attempts (message_id, attempt);
