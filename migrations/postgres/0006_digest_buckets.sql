-- Digest buckets (host/src/digests/buckets.rs): the held deliveries of one recipient, channel,
-- rule, grouping value and window, emitted once as a single digest delivery.
--
-- At most one bucket per key is open at a time (the partial unique index): a bucket closed
-- early (max items, or emitted on request) lets later items of the same window open the next.
CREATE TABLE digest_buckets (
    id                 TEXT PRIMARY KEY,
    tenant             TEXT NOT NULL,
    rule_id            TEXT NOT NULL REFERENCES digest_rules (id),
    recipient_id       TEXT NOT NULL,
    channel            TEXT NOT NULL,
    group_value        TEXT NOT NULL,
    window_start       TEXT NOT NULL,
    window_end         TEXT NOT NULL,
    -- open | emitted | empty (closed with nothing to send: only a first-now item came)
    status             TEXT NOT NULL,
    -- Held members so far (the first-now item is not one).
    items              BIGINT NOT NULL DEFAULT 0,
    -- The item sent at once under "first now", if any.
    first_delivery_id  TEXT,
    digest_delivery_id TEXT,
    -- window_end | max_items
    closed_by          TEXT,
    created_at         TEXT NOT NULL,
    closed_at          TEXT
);
CREATE UNIQUE INDEX digest_buckets_open
    ON digest_buckets (tenant, rule_id, recipient_id, channel, group_value, window_start)
    WHERE status = 'open';
CREATE INDEX digest_buckets_recipient ON digest_buckets (tenant, recipient_id, created_at);

-- A held delivery's bucket (set once, when it joins) and the digest key it was held under;
-- a digest delivery's own bucket.
ALTER TABLE deliveries ADD COLUMN digest_bucket_id TEXT;
ALTER TABLE deliveries ADD COLUMN digest_key TEXT;
ALTER TABLE deliveries ADD COLUMN digest_of TEXT;
CREATE INDEX deliveries_digest_bucket ON deliveries (digest_bucket_id);
CREATE INDEX deliveries_digest_of ON deliveries (digest_of);
