-- PostgreSQL twin of migrations/sqlite/0001_lifecycle.sql: the same tables and columns, so one
-- copy of each module's SQL serves both backends.
-- The notification lifecycle: events, notifications, deliveries, attempts, traces, inbox.
-- Ids are UUIDv7 text; times are UTC RFC 3339 text (sortable as text).

CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    notifier_key    TEXT NOT NULL,
    notifier_plugin TEXT NOT NULL,
    payload         TEXT NOT NULL,
    idempotency_key TEXT,
    created_at      TEXT NOT NULL
);
-- A trigger repeated with the same key is a duplicate, enforced here rather than by a lookup.
CREATE UNIQUE INDEX events_idempotency ON events (tenant, idempotency_key);

CREATE TABLE notifications (
    id           TEXT PRIMARY KEY,
    event_id     TEXT NOT NULL REFERENCES events (id),
    tenant       TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    category     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (event_id, recipient_id)
);

CREATE TABLE deliveries (
    id                  TEXT PRIMARY KEY,
    notification_id     TEXT NOT NULL REFERENCES notifications (id),
    event_id            TEXT NOT NULL REFERENCES events (id),
    tenant              TEXT NOT NULL,
    channel             TEXT NOT NULL,
    status              TEXT NOT NULL,
    status_reason       TEXT,
    status_detail       TEXT,
    idempotency_key     TEXT NOT NULL UNIQUE,
    planned_by          TEXT NOT NULL,
    rendered_by         TEXT,
    sent_by             TEXT,
    content             TEXT,
    provider_message_id TEXT,
    attempts            BIGINT NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (notification_id, channel)
);
CREATE INDEX deliveries_status ON deliveries (status, created_at);
CREATE INDEX deliveries_event ON deliveries (event_id);

-- Append-only: one row per provider call, never updated.
CREATE TABLE attempts (
    id                  TEXT PRIMARY KEY,
    delivery_id         TEXT NOT NULL REFERENCES deliveries (id),
    attempt             BIGINT NOT NULL,
    adapter             TEXT NOT NULL,
    started_at          TEXT NOT NULL,
    duration_ms         BIGINT NOT NULL,
    outcome             TEXT NOT NULL,
    error               TEXT,
    provider_message_id TEXT,
    UNIQUE (delivery_id, attempt)
);

-- Append-only: every decision and transition, in order (UUIDv7 ids are time-ordered).
CREATE TABLE traces (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    notification_id TEXT,
    delivery_id     TEXT,
    at              TEXT NOT NULL,
    kind            TEXT NOT NULL,
    reason          TEXT,
    detail          TEXT,
    plugin          TEXT,
    attempt         BIGINT
);
CREATE INDEX traces_event ON traces (event_id, id);
CREATE INDEX traces_notification ON traces (notification_id, id);
CREATE INDEX traces_delivery ON traces (delivery_id, id);

-- In-app deliveries land here; the inbox API (a later issue) reads and updates it.
CREATE TABLE inbox_items (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    recipient_id    TEXT NOT NULL,
    delivery_id     TEXT NOT NULL UNIQUE REFERENCES deliveries (id),
    notification_id TEXT NOT NULL,
    headline        TEXT NOT NULL,
    body            TEXT NOT NULL,
    action_label    TEXT,
    action_url      TEXT,
    created_at      TEXT NOT NULL,
    seen_at         TEXT,
    read_at         TEXT,
    archived_at     TEXT
);
CREATE INDEX inbox_recipient ON inbox_items (tenant, recipient_id, created_at);
