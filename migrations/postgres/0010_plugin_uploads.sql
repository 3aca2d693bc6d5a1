-- Plugins loaded at runtime over the API (POST /v1/plugins): kept so a restart, or another
-- process on this database when it starts, loads the same versions. Append-only: the newest
-- row per name is the one in force; older rows say what ran before.
CREATE TABLE plugin_uploads (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    reference   TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    component   BYTEA NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at TEXT NOT NULL
);
CREATE INDEX plugin_uploads_order ON plugin_uploads (uploaded_at, id);
