-- Removes a dataset row (its revisions are removed first). $1 dataset id.
DELETE FROM datasets WHERE id = $1::uuid
