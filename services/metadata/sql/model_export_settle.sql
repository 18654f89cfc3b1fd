-- Keeps the final state and error of an export whose job is about to be removed. $1 job id.
UPDATE model_exports e SET state = lower(j.state), error_code = j.error_code, error_message = j.error_message,
  update_time = now()
FROM fine_tuning_jobs j WHERE j.id = $1::uuid AND e.job_id = j.id
