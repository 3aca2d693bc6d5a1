-- PostgreSQL twin of migrations/sqlite/0003_policy.sql.
-- Policy (host/src/policy): what recipients said yes or no to, their time zone, quiet hours,
-- severity floor, caps and cooldowns, and the addresses that must never be sent to.
--
-- recipient_id '*' holds the tenant's defaults; a recipient's own row overrides them field by
-- field (preferences: per scope and target).

CREATE TABLE preferences (
    tenant       TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    -- channel | category | notifier | notifier_channel
    scope        TEXT NOT NULL,
    -- email | orders | order-shipped | order-shipped/email
    target       TEXT NOT NULL,
    enabled      BIGINT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (tenant, recipient_id, scope, target)
);

CREATE TABLE recipient_settings (
    tenant         TEXT NOT NULL,
    recipient_id   TEXT NOT NULL,
    time_zone      TEXT,
    -- Local minutes of day, both inclusive; set together or not at all.
    quiet_start    BIGINT,
    quiet_end      BIGINT,
    severity_floor TEXT,
    -- JSON objects: {"email": {"max": 3, "window_secs": 3600}} and {"order-shipped": 600}.
    caps           TEXT NOT NULL,
    cooldowns      TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (tenant, recipient_id)
);

-- An address (any channel sending to it) or a recipient on one channel. `subject` is the
-- unique key (`address:<normalised>` or `recipient:<id>/<channel>`): adding it again updates it.
CREATE TABLE suppressions (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    address      TEXT,
    recipient_id TEXT,
    channel      TEXT,
    reason       TEXT NOT NULL,
    note         TEXT,
    expires_at   TEXT,
    created_at   TEXT NOT NULL,
    UNIQUE (tenant, subject)
);
CREATE INDEX suppressions_address ON suppressions (tenant, address);
CREATE INDEX suppressions_recipient ON suppressions (tenant, recipient_id);

-- The notification's severity decides the severity floor; critical bypasses preferences,
-- quiet hours, caps and cooldowns (never a suppression).
ALTER TABLE notifications ADD COLUMN severity TEXT NOT NULL DEFAULT 'normal';
-- When the provider accepted it: caps count sends inside a sliding window.
ALTER TABLE deliveries ADD COLUMN sent_at TEXT;
CREATE INDEX notifications_recipient ON notifications (tenant, recipient_id, created_at);
