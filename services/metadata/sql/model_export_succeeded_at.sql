-- An export that succeeded into a directory (so the directory is one an export wrote). $1 destination_path.
SELECT e.id::text AS id FROM model_exports e LEFT JOIN fine_tuning_jobs j ON j.id = e.job_id
WHERE e.destination_path = $1 AND CASE WHEN j.id IS NULL THEN e.state ELSE lower(j.state) END = 'succeeded'
LIMIT 1
