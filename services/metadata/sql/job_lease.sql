-- Leases the oldest QUEUED job, or a RUNNING one whose lease expired with attempts left, to a worker: RUNNING, one
-- more attempt, a new deadline. $1 worker id, $2 lease seconds. lease_expired: the job was taken back from a trainer
-- that stopped reporting.
UPDATE fine_tuning_jobs SET state = 'RUNNING', attempts = attempts + 1, worker_id = $1,
  lease_expires_at = now() + make_interval(secs => $2), start_time = coalesce(start_time, now()), update_time = now(),
  error_code = '', error_message = ''
FROM (
  SELECT id AS picked_id, state AS previous_state FROM fine_tuning_jobs
  WHERE state = 'QUEUED' OR (state = 'RUNNING' AND lease_expires_at < now() AND attempts < max_attempts)
  ORDER BY create_time FOR UPDATE SKIP LOCKED LIMIT 1) AS picked
WHERE id = picked.picked_id
RETURNING id::text AS id, name, description, state, model_id::text AS model_id, model_revision_id::text AS model_revision_id, coalesce(dataset_id::text, '') AS dataset_id, coalesce(dataset_revision_id::text, '') AS dataset_revision_id, coalesce(prompt_id::text, '') AS prompt_id, config_ids::text AS config_ids, settings::text AS settings, attempts, max_attempts, worker_id, cancel_requested, progress::text AS progress, metrics::text AS metrics, error_code, error_message, coalesce(adapter_id::text, '') AS adapter_id, adapter_name, output_dir, checkpoint_dir, last_sequence, (extract(epoch FROM create_time) * 1000000)::bigint AS create_us, (extract(epoch FROM update_time) * 1000000)::bigint AS update_us, coalesce((extract(epoch FROM start_time) * 1000000)::bigint, 0) AS start_us, coalesce((extract(epoch FROM end_time) * 1000000)::bigint, 0) AS end_us, coalesce((extract(epoch FROM lease_expires_at) * 1000000)::bigint, 0) AS lease_us, kind, coalesce((SELECT e.id::text FROM model_exports e WHERE e.job_id = fine_tuning_jobs.id LIMIT 1), '') AS export_id, previous_state = 'RUNNING' AS lease_expired
