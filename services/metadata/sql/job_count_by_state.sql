-- How many jobs are in each state (states without jobs are absent), for the metrics endpoint.
SELECT state, count(*)::bigint AS jobs FROM fine_tuning_jobs GROUP BY state
