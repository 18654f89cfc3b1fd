-- A page of adapters ordered by name.
-- $1 name to start after (NULL: first page), $2 name prefix (NULL: any), $3 model id (NULL: any), $4 source_type (NULL: any), $5 limit.
SELECT a.id::text AS id, a.name, a.description, a.source_type, a.source, a.commit_sha, r.model_id::text AS model_id, a.model_revision_id::text AS model_revision_id, a.job_id::text AS job_id, a.peft_type, a.rank, a.alpha, a.target_modules::text AS target_modules, a.use_rslora, a.fingerprint, a.files::text AS files, (extract(epoch FROM a.create_time) * 1000000)::bigint AS create_us, (extract(epoch FROM a.update_time) * 1000000)::bigint AS update_us
FROM adapters a JOIN model_revisions r ON a.model_revision_id = r.id
WHERE ($1::text IS NULL OR a.name > $1)
  AND ($2::text IS NULL OR left(a.name, length($2)) = $2)
  AND ($3::uuid IS NULL OR r.model_id = $3::uuid)
  AND ($4::text IS NULL OR a.source_type = $4)
ORDER BY a.name
LIMIT $5
