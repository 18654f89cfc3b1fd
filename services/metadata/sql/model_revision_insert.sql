-- Adds the next revision of a model (the caller holds model_lock).
-- $1 model_id, $2 requested_revision, $3 commit_sha, $4 fingerprint, $5 family, $6 architecture, $7 files (json),
-- $8 bos ids (json), $9 eos ids (json), $10 parameter_count, $11 config_json.
INSERT INTO model_revisions (model_id, revision_number, requested_revision, commit_sha, fingerprint, family,
                             architecture, files, bos_token_ids, eos_token_ids, parameter_count, config_json)
SELECT $1::uuid, coalesce(max(revision_number), 0) + 1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9::jsonb, $10, $11
FROM model_revisions WHERE model_id = $1::uuid
RETURNING id::text AS id
