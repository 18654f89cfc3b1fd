-- Export requests that use an adapter. $1 adapter id.
SELECT 'export' AS kind, e.destination_path AS name, e.id::text AS id
FROM model_exports e
WHERE e.adapter_id = $1::uuid
ORDER BY e.destination_path
