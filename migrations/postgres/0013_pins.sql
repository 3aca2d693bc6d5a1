-- The plugin builds (JSON: notifier, renderer, adapters by channel; references
-- `name@version#hash`) a workflow run or digest bucket began with: its deliveries are built,
-- rendered and sent with those, whatever was loaded since (host/src/plugins/pins.rs). NULL
-- for rows from before pinning: they use the builds in force.
ALTER TABLE workflow_runs ADD COLUMN pins TEXT;
ALTER TABLE digest_buckets ADD COLUMN pins TEXT;
