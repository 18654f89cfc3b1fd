-- A model with its latest revision, by source. $1 id.
SELECT m.id::text AS id, m.name, m.description, m.source_type, m.source, m.family, (extract(epoch FROM m.create_time) * 1000000)::bigint AS create_us, (extract(epoch FROM m.update_time) * 1000000)::bigint AS update_us,
  (SELECT count(*) FROM model_revisions c WHERE c.model_id = m.id) AS revision_count,
  r.id::text AS r_id, r.model_id::text AS r_model_id, r.revision_number AS r_revision_number, r.requested_revision AS r_requested_revision, r.commit_sha AS r_commit_sha, r.fingerprint AS r_fingerprint, r.family AS r_family, r.architecture AS r_architecture, r.files::text AS r_files, r.bos_token_ids::text AS r_bos_token_ids, r.eos_token_ids::text AS r_eos_token_ids, r.parameter_count AS r_parameter_count, r.config_json AS r_config_json, (extract(epoch FROM r.create_time) * 1000000)::bigint AS r_create_us
FROM models m
LEFT JOIN LATERAL (SELECT * FROM model_revisions x WHERE x.model_id = m.id ORDER BY x.revision_number DESC LIMIT 1) r ON true
WHERE m.source_type = $1 AND m.source = $2
