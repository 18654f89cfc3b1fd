-- Jobs of more than one kind share the queue, events, cancel and Watch: fine-tuning jobs, and export jobs that merge
-- an adapter into its base model (or copy the adapter) on a trainer. Only fine-tuning jobs read a dataset and prompt.

ALTER TABLE fine_tuning_jobs ADD COLUMN kind text NOT NULL DEFAULT 'fine_tune'
  CHECK (kind IN ('fine_tune', 'export', 'evaluation'));
ALTER TABLE fine_tuning_jobs ALTER COLUMN dataset_id DROP NOT NULL;
ALTER TABLE fine_tuning_jobs ALTER COLUMN dataset_revision_id DROP NOT NULL;
ALTER TABLE fine_tuning_jobs ALTER COLUMN prompt_id DROP NOT NULL;
ALTER TABLE fine_tuning_jobs ADD CONSTRAINT fine_tuning_jobs_inputs CHECK (
  kind <> 'fine_tune' OR (dataset_id IS NOT NULL AND dataset_revision_id IS NOT NULL AND prompt_id IS NOT NULL));
CREATE INDEX fine_tuning_jobs_kind_idx ON fine_tuning_jobs (kind, create_time DESC);

-- An export is carried out by its job; its state and error are the job's while the job exists (the columns keep
-- the last ones once the job is removed). An export may replace a directory an earlier export wrote (overwrite), so the
-- destination is no longer unique across all exports.
ALTER TABLE model_exports ADD COLUMN job_id uuid REFERENCES fine_tuning_jobs (id) ON DELETE SET NULL;
ALTER TABLE model_exports ADD COLUMN dtype text NOT NULL DEFAULT '' CHECK (dtype IN ('', 'fp32', 'bf16', 'fp16'));
ALTER TABLE model_exports ADD COLUMN max_shard_size bigint NOT NULL DEFAULT 0 CHECK (max_shard_size >= 0);
ALTER TABLE model_exports ADD COLUMN overwrite boolean NOT NULL DEFAULT false;
ALTER TABLE model_exports ADD COLUMN exported_model_id uuid REFERENCES models (id) ON DELETE SET NULL;
ALTER TABLE model_exports ADD COLUMN exported_model_revision_id uuid REFERENCES model_revisions (id) ON DELETE SET NULL;
ALTER TABLE model_exports ADD COLUMN error_code text NOT NULL DEFAULT '';
ALTER TABLE model_exports ADD COLUMN error_message text NOT NULL DEFAULT '';
ALTER TABLE model_exports DROP CONSTRAINT model_exports_state_check;
ALTER TABLE model_exports ADD CONSTRAINT model_exports_state_check
  CHECK (state IN ('queued', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled'));
ALTER TABLE model_exports DROP CONSTRAINT model_exports_destination_path_key;
CREATE INDEX model_exports_destination_idx ON model_exports (destination_path);
CREATE INDEX model_exports_job_idx ON model_exports (job_id);
CREATE INDEX model_exports_exported_model_idx ON model_exports (exported_model_id);
