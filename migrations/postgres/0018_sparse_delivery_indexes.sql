-- Only digest members and digests have these set. Indexed whole, every other delivery is one
-- NULL key, and the statistics (`PRAGMA optimize`, ANALYZE) then say a bucket has as many
-- deliveries as the table: SQLite scanned every delivery to emit or send one digest. Lookups
-- are by value, which indexes of the set values alone still serve.
DROP INDEX deliveries_digest_bucket;
DROP INDEX deliveries_digest_of;
CREATE INDEX deliveries_digest_bucket ON deliveries (digest_bucket_id) WHERE digest_bucket_id IS NOT NULL;
CREATE INDEX deliveries_digest_of ON deliveries (digest_of) WHERE digest_of IS NOT NULL;
