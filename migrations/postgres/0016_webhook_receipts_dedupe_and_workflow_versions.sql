-- Contract holes of issue 22: a replayed provider webhook stores its raw request once, and a
-- workflow's (key, version) is immutable once a run used it.

-- The SHA-256 of what identifies a raw webhook request: tenant, adapter, method, URL and body
-- (see host/src/feedback/mod.rs). A replay of a captured request finds its digest taken and
-- stores no second row. NULL for requests stored before this column: NULLs never collide.
ALTER TABLE webhook_receipts ADD COLUMN request_digest TEXT;
CREATE UNIQUE INDEX webhook_receipts_request ON webhook_receipts (request_digest);

-- Each (workflow key, version) with the definition first used under it (JSON). A run may only
-- start with that definition: a changed declaration is a new version.
CREATE TABLE workflow_versions (
    workflow_key     TEXT NOT NULL,
    workflow_version TEXT NOT NULL,
    definition       TEXT NOT NULL,
    notifier_plugin  TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (workflow_key, workflow_version)
);
-- Runs started before this migration publish theirs, the earliest run of each version first.
INSERT INTO workflow_versions (workflow_key, workflow_version, definition, notifier_plugin, created_at)
SELECT workflow_key, workflow_version, definition, notifier_plugin, created_at
FROM workflow_runs WHERE 1 = 1 ORDER BY created_at, id
ON CONFLICT (workflow_key, workflow_version) DO NOTHING;
