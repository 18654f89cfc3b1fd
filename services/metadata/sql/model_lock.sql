-- Locks a model row so that revisions are numbered one at a time. $1 model id.
SELECT id FROM models WHERE id = $1::uuid FOR UPDATE
