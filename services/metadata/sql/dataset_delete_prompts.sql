-- Removes the prompt revisions built on a dataset's revisions. $1 dataset id.
DELETE FROM prompts WHERE dataset_revision_id IN (SELECT id FROM dataset_revisions WHERE dataset_id = $1::uuid)
