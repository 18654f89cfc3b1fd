-- A page of jobs, newest first. $1 states json array ([] = any), $2 model id or NULL, $3 cursor create_us or NULL,
-- $4 cursor id or NULL, $5 limit, $6 kinds json array ([] = any).
SELECT id::text AS id, name, description, state, model_id::text AS model_id, model_revision_id::text AS model_revision_id, coalesce(dataset_id::text, '') AS dataset_id, coalesce(dataset_revision_id::text, '') AS dataset_revision_id, coalesce(prompt_id::text, '') AS prompt_id, config_ids::text AS config_ids, settings::text AS settings, attempts, max_attempts, worker_id, cancel_requested, progress::text AS progress, metrics::text AS metrics, error_code, error_message, coalesce(adapter_id::text, '') AS adapter_id, adapter_name, output_dir, checkpoint_dir, last_sequence, (extract(epoch FROM create_time) * 1000000)::bigint AS create_us, (extract(epoch FROM update_time) * 1000000)::bigint AS update_us, coalesce((extract(epoch FROM start_time) * 1000000)::bigint, 0) AS start_us, coalesce((extract(epoch FROM end_time) * 1000000)::bigint, 0) AS end_us, coalesce((extract(epoch FROM lease_expires_at) * 1000000)::bigint, 0) AS lease_us, kind, coalesce((SELECT e.id::text FROM model_exports e WHERE e.job_id = fine_tuning_jobs.id LIMIT 1), '') AS export_id FROM fine_tuning_jobs
WHERE (jsonb_array_length($1::jsonb) = 0 OR state IN (SELECT jsonb_array_elements_text($1::jsonb)))
  AND ($2::uuid IS NULL OR model_id = $2::uuid)
  AND (jsonb_array_length($6::jsonb) = 0 OR kind IN (SELECT jsonb_array_elements_text($6::jsonb)))
  AND ($3::bigint IS NULL OR ((extract(epoch FROM create_time) * 1000000)::bigint, id) < ($3::bigint, $4::uuid))
ORDER BY (extract(epoch FROM create_time) * 1000000)::bigint DESC, id DESC
LIMIT $5
