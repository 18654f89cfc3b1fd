-- Records an export and the job that carries it out. $1 model_revision_id, $2 adapter_id, $3 type,
-- $4 destination_path, $5 exported_model_name, $6 job_id, $7 dtype, $8 max_shard_size, $9 overwrite.
INSERT INTO model_exports (model_revision_id, adapter_id, type, destination_path, exported_model_name, job_id, dtype,
                           max_shard_size, overwrite)
VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6::uuid, $7, $8, $9)
RETURNING id::text AS id
