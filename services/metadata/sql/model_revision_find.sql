-- The revision of a model with a given fingerprint, if any. $1 model id, $2 fingerprint.
SELECT r.id::text AS r_id, r.model_id::text AS r_model_id, r.revision_number AS r_revision_number, r.requested_revision AS r_requested_revision, r.commit_sha AS r_commit_sha, r.fingerprint AS r_fingerprint, r.family AS r_family, r.architecture AS r_architecture, r.files::text AS r_files, r.bos_token_ids::text AS r_bos_token_ids, r.eos_token_ids::text AS r_eos_token_ids, r.parameter_count AS r_parameter_count, r.config_json AS r_config_json, (extract(epoch FROM r.create_time) * 1000000)::bigint AS r_create_us
FROM model_revisions r
WHERE r.model_id = $1::uuid AND r.fingerprint = $2
