-- Workflows (host/src/workflows): one run per notification of a notifier that declares one.
--
-- A run holds the definition it started with (JSON), so later declarations never change it,
-- and the notifier build that planned it. `version` grows with every move: a move is written
-- only by the transaction that saw the run at that version, so repeated or concurrent
-- progression after the same outcome moves the run once.
CREATE TABLE workflow_runs (
    id               TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    event_id         TEXT NOT NULL REFERENCES events (id),
    notification_id  TEXT NOT NULL UNIQUE REFERENCES notifications (id),
    recipient_id     TEXT NOT NULL,
    workflow_key     TEXT NOT NULL,
    workflow_version TEXT NOT NULL,
    definition       TEXT NOT NULL,
    notifier_plugin  TEXT NOT NULL,
    -- The channels the notifier planned for this recipient (JSON list).
    channels         TEXT NOT NULL,
    -- running (a step's delivery is under way) | waiting | completed | stopped
    status           TEXT NOT NULL,
    status_reason    TEXT,
    step_key         TEXT NOT NULL,
    step_delivery_id TEXT,
    -- While waiting: until when, and the signals that cancel or resume (JSON lists).
    wait_until       TEXT,
    cancel_on        TEXT,
    resume_on        TEXT,
    version          INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    ended_at         TEXT
);
CREATE INDEX workflow_runs_actor ON workflow_runs (tenant, recipient_id, status);

-- Append-only: every move of a run, with its evidence.
CREATE TABLE workflow_transitions (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES workflow_runs (id),
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    step_key    TEXT,
    delivery_id TEXT,
    reason      TEXT,
    evidence    TEXT NOT NULL
);
CREATE INDEX workflow_transitions_run ON workflow_transitions (run_id, id);

-- Append-only: every signal received, and how many runs it moved.
CREATE TABLE signals (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    name       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    runs_moved INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX signals_actor ON signals (tenant, actor, created_at);

-- A step's delivery: its run and step. One delivery per (run, step), whatever repeats.
ALTER TABLE deliveries ADD COLUMN workflow_run_id TEXT;
ALTER TABLE deliveries ADD COLUMN workflow_step TEXT;
CREATE UNIQUE INDEX deliveries_workflow_step
    ON deliveries (workflow_run_id, workflow_step) WHERE workflow_run_id IS NOT NULL;
