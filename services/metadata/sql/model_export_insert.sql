-- Records an export request. $1 model_revision_id, $2 adapter_id, $3 type, $4 destination_path, $5 exported_model_name.
INSERT INTO model_exports (model_revision_id, adapter_id, type, destination_path, exported_model_name)
VALUES ($1::uuid, $2::uuid, $3, $4, $5)
RETURNING id::text AS id, state, (extract(epoch FROM create_time) * 1000000)::bigint AS create_us
