-- An adapter with its model id, by id. $1 id.
SELECT a.id::text AS id, a.name, a.description, a.source_type, a.source, a.commit_sha, r.model_id::text AS model_id, a.model_revision_id::text AS model_revision_id, a.job_id::text AS job_id, a.peft_type, a.rank, a.alpha, a.target_modules::text AS target_modules, a.use_rslora, a.fingerprint, a.files::text AS files, (extract(epoch FROM a.create_time) * 1000000)::bigint AS create_us, (extract(epoch FROM a.update_time) * 1000000)::bigint AS update_us
FROM adapters a JOIN model_revisions r ON a.model_revision_id = r.id
WHERE a.id = $1::uuid
