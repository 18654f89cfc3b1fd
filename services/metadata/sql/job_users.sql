-- Jobs that use a model, a dataset, a prompt (by name: all its revisions) or a config. $1 model id or NULL,
-- $2 dataset id or NULL, $3 prompt name or NULL, $4 config id or NULL.
SELECT id::text AS id, name, state FROM fine_tuning_jobs
WHERE ($1::uuid IS NOT NULL AND model_id = $1::uuid) OR ($2::uuid IS NOT NULL AND dataset_id = $2::uuid)
   OR ($3::text IS NOT NULL AND prompt_id IN (SELECT id FROM prompts WHERE name = $3::text))
   OR ($4::uuid IS NOT NULL AND config_ids ? $4::text)
ORDER BY create_time
