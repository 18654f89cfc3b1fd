-- What the lineage shows of one record: its name, the record it is a revision of, revision number, state (jobs,
-- exports) and detail (a job's or config's kind, an adapter's source, an export's type). $1 kind, $2 id.
SELECT m.name, r.model_id::text AS parent_id, r.revision_number, '' AS state, r.family AS detail
FROM model_revisions r JOIN models m ON m.id = r.model_id WHERE $1 = 'model_revision' AND r.id = $2::uuid
UNION ALL
SELECT d.name, r.dataset_id::text, r.revision_number, '', r.format
FROM dataset_revisions r JOIN datasets d ON d.id = r.dataset_id WHERE $1 = 'dataset_revision' AND r.id = $2::uuid
UNION ALL
SELECT p.name, '', p.revision_number, '', p.mode FROM prompts p WHERE $1 = 'prompt' AND p.id = $2::uuid
UNION ALL
SELECT coalesce(c.name, ''), '', 0, '', c.type FROM configs c WHERE $1 = 'config' AND c.id = $2::uuid
UNION ALL
SELECT j.name, '', 0, j.state, j.kind FROM fine_tuning_jobs j WHERE $1 = 'job' AND j.id = $2::uuid
UNION ALL
SELECT a.name, '', 0, '', a.source_type FROM adapters a WHERE $1 = 'adapter' AND a.id = $2::uuid
UNION ALL
SELECT CASE WHEN e.exported_model_name = '' THEN e.destination_path ELSE e.exported_model_name END, coalesce(e.job_id::text, ''), 0,
       CASE WHEN j.id IS NULL THEN e.state ELSE lower(j.state) END, e.type
FROM model_exports e LEFT JOIN fine_tuning_jobs j ON j.id = e.job_id WHERE $1 = 'export' AND e.id = $2::uuid
