-- What one record was made from: rows of (kind, id, relation), each an edge from that record to this one.
-- $1 kind (model_revision | dataset_revision | prompt | config | job | adapter | export), $2 id.
SELECT 'model_revision' AS kind, a.model_revision_id::text AS id, 'base model' AS relation FROM adapters a
WHERE $1 = 'adapter' AND a.id = $2::uuid AND NOT EXISTS (SELECT 1 FROM fine_tuning_jobs j WHERE j.id = a.job_id)
UNION ALL
SELECT 'job', a.job_id::text, 'trained by' FROM adapters a
WHERE $1 = 'adapter' AND a.id = $2::uuid AND EXISTS (SELECT 1 FROM fine_tuning_jobs j WHERE j.id = a.job_id)
UNION ALL
SELECT 'model_revision', j.model_revision_id::text, 'base model' FROM fine_tuning_jobs j WHERE $1 = 'job' AND j.id = $2::uuid
UNION ALL
SELECT 'dataset_revision', j.dataset_revision_id::text, 'dataset' FROM fine_tuning_jobs j
WHERE $1 = 'job' AND j.id = $2::uuid AND j.dataset_revision_id IS NOT NULL
UNION ALL
SELECT 'prompt', j.prompt_id::text, 'prompt' FROM fine_tuning_jobs j WHERE $1 = 'job' AND j.id = $2::uuid AND j.prompt_id IS NOT NULL
UNION ALL
SELECT 'config', c.config_id, 'config' FROM fine_tuning_jobs j, jsonb_array_elements_text(j.config_ids) AS c(config_id)
WHERE $1 = 'job' AND j.id = $2::uuid
UNION ALL
SELECT 'adapter', x.id::text, 'evaluated'
FROM fine_tuning_jobs j, jsonb_array_elements_text(coalesce(j.settings #> '{evaluation,adapter_ids}', '[]')) AS a(adapter_id), adapters x
WHERE $1 = 'job' AND j.id = $2::uuid AND j.kind = 'evaluation' AND x.id::text = a.adapter_id
UNION ALL
SELECT 'dataset_revision', p.dataset_revision_id::text, 'dataset' FROM prompts p WHERE $1 = 'prompt' AND p.id = $2::uuid
UNION ALL
SELECT 'model_revision', e.model_revision_id::text, 'base model' FROM model_exports e WHERE $1 = 'export' AND e.id = $2::uuid
UNION ALL
SELECT 'adapter', e.adapter_id::text, 'adapter' FROM model_exports e WHERE $1 = 'export' AND e.id = $2::uuid
UNION ALL
SELECT 'export', e.id::text, 'exported as' FROM model_exports e
WHERE $1 = 'model_revision' AND e.exported_model_revision_id = $2::uuid
ORDER BY kind, id
