-- Events of a job after a sequence number, oldest first. $1 job id, $2 after sequence, $3 limit.
SELECT sequence, (extract(epoch FROM time) * 1000000)::bigint AS time_us, kind, level, message, state, progress::text AS progress, metrics::text AS metrics
FROM job_events WHERE job_id = $1::uuid AND sequence > $2 ORDER BY sequence LIMIT $3
