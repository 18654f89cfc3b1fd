-- A page of exports, newest first. $1 base model id or NULL, $2 adapter id or NULL, $3 cursor create_us or NULL,
-- $4 cursor id or NULL, $5 limit.
SELECT e.id::text AS id, r.model_id::text AS model_id, e.model_revision_id::text AS model_revision_id, e.adapter_id::text AS adapter_id, e.type, e.destination_path, e.exported_model_name, coalesce(e.job_id::text, '') AS job_id, e.dtype, e.max_shard_size, e.overwrite, coalesce(e.exported_model_id::text, '') AS exported_model_id, coalesce(e.exported_model_revision_id::text, '') AS exported_model_revision_id, CASE WHEN j.id IS NULL THEN e.state ELSE lower(j.state) END AS state, CASE WHEN j.id IS NULL THEN e.error_code ELSE j.error_code END AS error_code, CASE WHEN j.id IS NULL THEN e.error_message ELSE j.error_message END AS error_message, (extract(epoch FROM e.create_time) * 1000000)::bigint AS create_us
FROM model_exports e JOIN model_revisions r ON r.id = e.model_revision_id LEFT JOIN fine_tuning_jobs j ON j.id = e.job_id
WHERE ($1::uuid IS NULL OR r.model_id = $1::uuid)
  AND ($2::uuid IS NULL OR e.adapter_id = $2::uuid)
  AND ($3::bigint IS NULL OR ((extract(epoch FROM e.create_time) * 1000000)::bigint, e.id) < ($3::bigint, $4::uuid))
ORDER BY (extract(epoch FROM e.create_time) * 1000000)::bigint DESC, e.id DESC
LIMIT $5
