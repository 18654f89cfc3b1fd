-- Removes the adapters of a model's revisions (their exports are removed first). $1 model id.
DELETE FROM adapters WHERE model_revision_id IN (SELECT id FROM model_revisions WHERE model_id = $1::uuid)
