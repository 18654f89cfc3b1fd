-- Checkpoints of a job, by step. $1 job id.
SELECT id::text AS id, job_id::text AS job_id, step, epoch, path, train_loss, attempt, (extract(epoch FROM create_time) * 1000000)::bigint AS create_us
FROM job_checkpoints WHERE job_id = $1::uuid ORDER BY step
