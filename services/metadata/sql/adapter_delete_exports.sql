-- Removes the export requests that use an adapter. $1 adapter id.
DELETE FROM model_exports WHERE adapter_id = $1::uuid
