-- Digest rules (host/src/digests/rules.rs): which held deliveries collapse into one message,
-- grouped how, over which window. A (tenant, key, version) is published once and never
-- changes; a new version is a new row, and lookups use each key's highest version.

CREATE TABLE digest_rules (
    id               TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    rule_key         TEXT NOT NULL,
    version          BIGINT NOT NULL,
    channel          TEXT NOT NULL,
    -- Matches; NULL matches anything.
    notifier_key     TEXT,
    category         TEXT,
    digest_key       TEXT,
    -- notifier | category | digest_key
    group_by         TEXT NOT NULL,
    -- fixed ("60": minutes, aligned to the Unix epoch) | boundary ("09:00 Europe/London")
    window_kind      TEXT NOT NULL,
    window_spec      TEXT NOT NULL,
    max_items        BIGINT,
    -- 1: the first item of a window is sent at once, the rest are digested.
    first_now        BIGINT NOT NULL,
    created_at       TEXT NOT NULL,
    UNIQUE (tenant, rule_key, version)
);
CREATE INDEX digest_rules_channel ON digest_rules (tenant, channel);
