-- Removes every revision of a model. $1 model id.
DELETE FROM model_revisions WHERE model_id = $1::uuid
