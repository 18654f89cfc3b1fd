-- Removes the jobs job_users lists (their events and checkpoints go with them). Same parameters.
DELETE FROM fine_tuning_jobs
WHERE ($1::uuid IS NOT NULL AND model_id = $1::uuid) OR ($2::uuid IS NOT NULL AND dataset_id = $2::uuid)
   OR ($3::text IS NOT NULL AND prompt_id IN (SELECT id FROM prompts WHERE name = $3::text))
   OR ($4::uuid IS NOT NULL AND config_ids ? $4::text)
