-- Writes a job's mutable fields. $1 id, $2 state, $3 worker_id, $4 lease seconds (NULL keeps the deadline, 0 clears it),
-- $5 cancel_requested, $6 progress json, $7 metrics json, $8 error_code, $9 error_message, $10 adapter_id or NULL,
-- $11 ended (sets end_time).
UPDATE fine_tuning_jobs SET state = $2, worker_id = $3,
  lease_expires_at = CASE WHEN $4::double precision IS NULL THEN lease_expires_at WHEN $4::double precision = 0 THEN NULL ELSE now() + make_interval(secs => $4::double precision) END,
  cancel_requested = $5, progress = $6::jsonb, metrics = $7::jsonb, error_code = $8, error_message = $9,
  adapter_id = $10::uuid, end_time = CASE WHEN $11 THEN now() ELSE end_time END, update_time = now()
WHERE id = $1::uuid
RETURNING (extract(epoch FROM lease_expires_at) * 1000000)::bigint AS lease_us
