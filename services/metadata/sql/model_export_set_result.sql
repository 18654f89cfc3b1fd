-- Records what a finished export registered and its final state. $1 id, $2 exported_model_id or NULL,
-- $3 exported_model_revision_id or NULL, $4 state.
UPDATE model_exports SET exported_model_id = $2::uuid, exported_model_revision_id = $3::uuid, state = $4,
  update_time = now()
WHERE id = $1::uuid
