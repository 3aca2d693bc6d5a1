-- Dispatch reads a few deliveries by id, or one recipient's, for every job. With
-- `deliveries_status (status, created_at)` in reach, SQLite (without statistics) and PostgreSQL
-- (before autovacuum had analysed a burst) read those through it instead: every pending
-- delivery, which in a backlog is the backlog itself (issue 22: 63 jobs/s with 600,000
-- waiting). Nothing is looked up by status alone across tenants, so the index goes; listing a
-- tenant's deliveries of one status, newest first, gets an index that starts with the tenant.
DROP INDEX deliveries_status;
CREATE INDEX deliveries_tenant_status ON deliveries (tenant, status, created_at DESC, id DESC);
