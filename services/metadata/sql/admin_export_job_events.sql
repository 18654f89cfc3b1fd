-- Every row of job_events as one JSON array and the row count, for ExportDatabase. No parameters.
SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.job_id, t.sequence), '[]')::text AS rows_json, count(*) AS row_count
FROM job_events t
