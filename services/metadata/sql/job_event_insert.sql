-- Appends an event with the job's next sequence number. $1 job id, $2 kind, $3 level, $4 message, $5 state,
-- $6 progress json or NULL, $7 metrics json or NULL.
WITH seq AS (UPDATE fine_tuning_jobs SET last_sequence = last_sequence + 1 WHERE id = $1::uuid RETURNING last_sequence)
INSERT INTO job_events (job_id, sequence, kind, level, message, state, progress, metrics)
SELECT $1::uuid, last_sequence, $2, $3, $4, $5, $6::jsonb, $7::jsonb FROM seq
RETURNING sequence
