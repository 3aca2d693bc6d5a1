-- A recipient's own digest cadence per category (host/src/digests/cadence.rs): overrides the
-- window of whichever rule takes their held deliveries of that category, or (`instant`)
-- sends them at once. Daily and weekly cadences read `at_minute` in the recipient's time
-- zone (recipient_settings.time_zone, else UTC).
CREATE TABLE digest_cadences (
    tenant       TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    category     TEXT NOT NULL,
    -- instant | hourly | daily | weekly
    cadence      TEXT NOT NULL,
    -- daily, weekly: local minute of the day (0..1439)
    at_minute    INTEGER,
    -- weekly: mon..sun
    weekday      TEXT,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (tenant, recipient_id, category)
);
