-- An export whose job is still queued or running into a directory. $1 destination_path.
SELECT e.id::text AS id FROM model_exports e JOIN fine_tuning_jobs j ON j.id = e.job_id
WHERE e.destination_path = $1 AND j.state IN ('QUEUED', 'RUNNING', 'CANCELLING')
LIMIT 1
