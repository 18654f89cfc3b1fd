-- Every row of fine_tuning_jobs as one JSON array and the row count, for ExportDatabase. No parameters.
SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.create_time, t.id), '[]')::text AS rows_json, count(*) AS row_count
FROM fine_tuning_jobs t
