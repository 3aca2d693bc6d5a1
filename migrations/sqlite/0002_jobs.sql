-- The durable job queue (host/src/dispatch/queue.rs). A job row exists while work remains;
-- the delivery, its attempts and its traces keep the history once the job is done.
--
-- `run_at` is when the job may next be leased. Leasing sets it to the lease's expiry, so one
-- condition (`run_at <= now`) finds both due jobs and jobs whose worker died or hung.
-- `lease_token` is new for every lease: completing needs the token, so a worker whose lease
-- expired and was taken over cannot complete the job a second time.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    subject_id       TEXT NOT NULL,
    tenant           TEXT NOT NULL,
    state            TEXT NOT NULL,
    run_at           TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_token      TEXT,
    leased_at        TEXT,
    rescued_from     TEXT,
    leased_from      TEXT,
    reason           TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (kind, subject_id)
);
CREATE INDEX jobs_run_at ON jobs (run_at);
