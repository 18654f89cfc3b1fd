-- Removes export requests on a model's revisions or on adapters of those revisions. $1 model id.
DELETE FROM model_exports e
WHERE e.model_revision_id IN (SELECT id FROM model_revisions WHERE model_id = $1::uuid)
   OR e.adapter_id IN (SELECT a.id FROM adapters a JOIN model_revisions r ON a.model_revision_id = r.id
                       WHERE r.model_id = $1::uuid)
