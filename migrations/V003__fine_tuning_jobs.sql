-- Fine-tuning jobs: the queue trainers lease from (FOR UPDATE SKIP LOCKED), their events (pushed to watchers with
-- NOTIFY tuneforge_job_events) and checkpoints.

CREATE TABLE fine_tuning_jobs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  state text NOT NULL CHECK (state IN ('QUEUED', 'RUNNING', 'CANCELLING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
  model_id uuid NOT NULL REFERENCES models (id),
  model_revision_id uuid NOT NULL REFERENCES model_revisions (id),
  dataset_id uuid NOT NULL REFERENCES datasets (id),
  dataset_revision_id uuid NOT NULL REFERENCES dataset_revisions (id),
  prompt_id uuid NOT NULL REFERENCES prompts (id),
  config_ids jsonb NOT NULL,
  settings jsonb NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 10),
  worker_id text NOT NULL DEFAULT '',
  lease_expires_at timestamptz,
  cancel_requested boolean NOT NULL DEFAULT false,
  progress jsonb NOT NULL DEFAULT '{}',
  metrics jsonb NOT NULL DEFAULT '{}',
  error_code text NOT NULL DEFAULT '',
  error_message text NOT NULL DEFAULT '',
  adapter_id uuid REFERENCES adapters (id) ON DELETE SET NULL,
  adapter_name text NOT NULL,
  output_dir text NOT NULL,
  checkpoint_dir text NOT NULL,
  last_sequence bigint NOT NULL DEFAULT 0,
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now(),
  start_time timestamptz,
  end_time timestamptz
);

CREATE INDEX fine_tuning_jobs_queue_idx ON fine_tuning_jobs (create_time) WHERE state IN ('QUEUED', 'RUNNING', 'CANCELLING');
CREATE INDEX fine_tuning_jobs_model_idx ON fine_tuning_jobs (model_id, create_time DESC);

CREATE TABLE job_events (
  job_id uuid NOT NULL REFERENCES fine_tuning_jobs (id) ON DELETE CASCADE,
  sequence bigint NOT NULL,
  time timestamptz NOT NULL DEFAULT clock_timestamp(),
  kind text NOT NULL CHECK (kind IN ('state', 'progress', 'log', 'checkpoint')),
  level text NOT NULL DEFAULT 'info',
  message text NOT NULL DEFAULT '',
  state text NOT NULL DEFAULT '',
  progress jsonb,
  metrics jsonb,
  PRIMARY KEY (job_id, sequence)
);

CREATE TABLE job_checkpoints (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  job_id uuid NOT NULL REFERENCES fine_tuning_jobs (id) ON DELETE CASCADE,
  step bigint NOT NULL,
  epoch integer NOT NULL,
  path text NOT NULL,
  train_loss double precision NOT NULL DEFAULT 0,
  attempt integer NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  UNIQUE (job_id, step)
);

CREATE FUNCTION notify_job_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('tuneforge_job_events', NEW.job_id::text);
  RETURN NULL;
END $$;

CREATE TRIGGER job_events_notify AFTER INSERT ON job_events FOR EACH ROW EXECUTE FUNCTION notify_job_event();
