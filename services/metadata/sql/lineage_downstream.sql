-- What was made from one record: rows of (kind, id, relation), each an edge from this record to that one.
-- $1 kind (model_revision | dataset_revision | prompt | config | job | adapter | export), $2 id.
SELECT 'adapter' AS kind, a.id::text AS id, 'base model' AS relation FROM adapters a
WHERE $1 = 'model_revision' AND a.model_revision_id = $2::uuid
  AND NOT EXISTS (SELECT 1 FROM fine_tuning_jobs j WHERE j.id = a.job_id)
UNION ALL
SELECT 'job', j.id::text, 'base model' FROM fine_tuning_jobs j
WHERE $1 = 'model_revision' AND j.model_revision_id = $2::uuid AND j.kind IN ('fine_tune', 'evaluation')
UNION ALL
SELECT 'export', e.id::text, 'base model' FROM model_exports e WHERE $1 = 'model_revision' AND e.model_revision_id = $2::uuid
UNION ALL
SELECT 'prompt', p.id::text, 'dataset' FROM prompts p WHERE $1 = 'dataset_revision' AND p.dataset_revision_id = $2::uuid
UNION ALL
SELECT 'job', j.id::text, 'dataset' FROM fine_tuning_jobs j WHERE $1 = 'dataset_revision' AND j.dataset_revision_id = $2::uuid
UNION ALL
SELECT 'job', j.id::text, 'prompt' FROM fine_tuning_jobs j WHERE $1 = 'prompt' AND j.prompt_id = $2::uuid
UNION ALL
SELECT 'job', j.id::text, 'config' FROM fine_tuning_jobs j WHERE $1 = 'config' AND j.config_ids @> jsonb_build_array($2::text)
UNION ALL
SELECT 'adapter', a.id::text, 'trained by' FROM adapters a WHERE $1 = 'job' AND a.job_id = $2::uuid
UNION ALL
SELECT 'export', e.id::text, 'adapter' FROM model_exports e WHERE $1 = 'adapter' AND e.adapter_id = $2::uuid
UNION ALL
SELECT 'job', j.id::text, 'evaluated' FROM fine_tuning_jobs j
WHERE $1 = 'adapter' AND j.kind = 'evaluation' AND coalesce(j.settings #> '{evaluation,adapter_ids}', '[]') ? $2::text
UNION ALL
SELECT 'model_revision', e.exported_model_revision_id::text, 'exported as' FROM model_exports e
WHERE $1 = 'export' AND e.id = $2::uuid AND e.exported_model_revision_id IS NOT NULL
ORDER BY kind, id
