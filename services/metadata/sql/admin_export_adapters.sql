-- Every row of adapters as one JSON array (oldest first, then by id) and the row count, for ExportDatabase. No parameters.
SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.create_time, t.id), '[]')::text AS rows_json, count(*) AS row_count
FROM adapters t
