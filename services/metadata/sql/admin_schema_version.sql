-- The database's schema version: the highest applied migration (0 when none). No parameters.
SELECT coalesce(max(version), 0)::integer AS schema_version FROM tuneforge_schema_migrations
