-- Removes a model row (its revisions are removed first). $1 model id.
DELETE FROM models WHERE id = $1::uuid
