-- Locks a dataset row so that revisions are numbered, and removals happen, one at a time. $1 dataset id.
SELECT id FROM datasets WHERE id = $1::uuid FOR UPDATE
