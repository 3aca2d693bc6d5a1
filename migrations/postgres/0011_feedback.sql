-- What providers said after the send (host/src/feedback): their webhook requests, kept raw
-- for replay, the normalized events read from them, and each delivery's projection.

-- A verified provider webhook request, exactly as received. Rows older than the configured
-- retention are deleted; the events read from them stay.
CREATE TABLE webhook_receipts (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    adapter     TEXT NOT NULL,
    plugin      TEXT NOT NULL,
    method      TEXT NOT NULL,
    url         TEXT NOT NULL,
    headers     TEXT NOT NULL,
    body        BYTEA NOT NULL,
    received_at TEXT NOT NULL,
    new_events  BIGINT NOT NULL
);
CREATE INDEX webhook_receipts_received ON webhook_receipts (received_at);

-- The ledger: append-only, one row per provider event. A provider that repeats an event (a
-- retry) finds its id taken and writes nothing. `delivery_id` is NULL while the event is an
-- orphan: its message was not found yet (the webhook beat the send's own commit).
CREATE TABLE feedback_events (
    id                  TEXT PRIMARY KEY,
    tenant              TEXT NOT NULL,
    adapter             TEXT NOT NULL,
    provider_event_id   TEXT NOT NULL,
    provider_message_id TEXT NOT NULL,
    kind                TEXT NOT NULL,
    occurred_at         TEXT,
    reason              TEXT,
    received_at         TEXT NOT NULL,
    receipt_id          TEXT NOT NULL,
    delivery_id         TEXT,
    UNIQUE (tenant, adapter, provider_event_id)
);
CREATE INDEX feedback_events_message ON feedback_events (tenant, adapter, provider_message_id);
CREATE INDEX feedback_events_delivery ON feedback_events (delivery_id);

-- Each delivery's feedback folded from its events; recomputed from the whole ledger of the
-- delivery on every new event, so it is the same whatever order the events arrived in.
CREATE TABLE delivery_feedback (
    delivery_id        TEXT PRIMARY KEY,
    tenant             TEXT NOT NULL,
    status             TEXT NOT NULL,
    last_event         TEXT NOT NULL,
    last_event_at      TEXT NOT NULL,
    first_delivered_at TEXT,
    first_opened_at    TEXT,
    first_clicked_at   TEXT,
    terminal           TEXT,
    terminal_at        TEXT,
    events             BIGINT NOT NULL,
    updated_at         TEXT NOT NULL
);

-- Finding the delivery a provider's message id belongs to.
CREATE INDEX attempts_provider_message ON attempts (provider_message_id);
