-- Every row of evaluation_results as one JSON array and the row count, for ExportDatabase. No parameters.
SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.create_time, t.job_id, t.position), '[]')::text AS rows_json, count(*) AS row_count
FROM evaluation_results t
