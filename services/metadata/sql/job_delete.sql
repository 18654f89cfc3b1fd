-- Removes a job; its events and checkpoints go with it. $1 id.
DELETE FROM fine_tuning_jobs WHERE id = $1::uuid
