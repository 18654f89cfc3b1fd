-- Removes every revision of a dataset (their prompts are removed first). $1 dataset id.
DELETE FROM dataset_revisions WHERE dataset_id = $1::uuid
