-- Records a checkpoint (a repeated step keeps the newest). $1 job id, $2 step, $3 epoch, $4 path, $5 train loss, $6 attempt.
INSERT INTO job_checkpoints (job_id, step, epoch, path, train_loss, attempt) VALUES ($1::uuid, $2, $3, $4, $5, $6)
ON CONFLICT (job_id, step) DO UPDATE SET epoch = EXCLUDED.epoch, path = EXCLUDED.path, train_loss = EXCLUDED.train_loss, attempt = EXCLUDED.attempt, create_time = now()
