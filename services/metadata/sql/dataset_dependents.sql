-- What depends on a dataset's revisions: prompt revisions (one row each). $1 dataset id.
SELECT 'prompt' AS kind, p.name AS name, p.id::text AS id
FROM prompts p JOIN dataset_revisions r ON p.dataset_revision_id = r.id
WHERE r.dataset_id = $1::uuid
ORDER BY p.name, p.revision_number
