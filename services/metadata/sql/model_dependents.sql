-- What depends on a model's revisions: adapters and export requests. $1 model id.
SELECT 'adapter' AS kind, a.name AS name, a.id::text AS id
FROM adapters a JOIN model_revisions r ON a.model_revision_id = r.id
WHERE r.model_id = $1::uuid
UNION ALL
SELECT 'export' AS kind, e.destination_path AS name, e.id::text AS id
FROM model_exports e JOIN model_revisions r ON e.model_revision_id = r.id
WHERE r.model_id = $1::uuid
ORDER BY kind, name
