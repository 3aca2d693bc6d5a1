-- A plugin uploaded as a package archive (POST /v1/plugins) brings assets (a notifier's
-- templates and translations): kept beside its component so a restart, or another process on
-- this database, loads the same build with them. The assets alone, as a gzip-compressed tar of
-- `assets/PATH` entries; NULL for an upload without assets (and every row from before).
ALTER TABLE plugin_uploads ADD COLUMN assets BLOB;
