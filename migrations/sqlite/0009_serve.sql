-- `belfry serve` (src/serve): tenants, API keys, and the inbox states end users change.
--
-- A tenant row exists once something needs a per-tenant secret (keys are created for it, an
-- operator created it). Triggers do not require one: a tenant is still just a name there.
CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    -- Signs the short-lived inbox tokens the application mints for its end users (hex).
    inbox_secret TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

-- Only a SHA-256 of each secret is kept; the secret is shown once, at creation.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    -- NULL for an admin key (operator endpoints; any tenant through a header).
    tenant      TEXT,
    name        TEXT NOT NULL,
    -- tenant | admin
    role        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    -- The first characters of the secret, so an operator can tell keys apart in a list.
    prefix      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- `read_at` is the first read and never changes (the policy asks "was it read before the
-- fallback came due?"); `last_read_at` follows mark read / mark unread, and is what makes an
-- item unread in the inbox.
ALTER TABLE inbox_items ADD COLUMN last_read_at TEXT;
UPDATE inbox_items SET last_read_at = read_at;
CREATE INDEX inbox_paging ON inbox_items (tenant, recipient_id, created_at DESC, id DESC);
CREATE INDEX deliveries_recent ON deliveries (tenant, created_at DESC, id DESC);
CREATE INDEX events_recent ON events (tenant, created_at DESC, id DESC);
