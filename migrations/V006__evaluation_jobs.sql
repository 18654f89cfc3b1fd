-- Evaluation jobs: a trainer scores a base model revision and adapters of it on a dataset split (the training loss
-- and perplexity, with sample generations). The job is a row of fine_tuning_jobs (kind 'evaluation', which reads a
-- dataset and prompt as a fine-tuning job does); its results are one row per candidate, position 0 the base and then
-- each adapter in the order the job names them (settings.evaluation.adapter_ids). A removed adapter keeps its row
-- here, by name.

ALTER TABLE fine_tuning_jobs DROP CONSTRAINT fine_tuning_jobs_inputs;
ALTER TABLE fine_tuning_jobs ADD CONSTRAINT fine_tuning_jobs_inputs CHECK (
  kind = 'export' OR (dataset_id IS NOT NULL AND dataset_revision_id IS NOT NULL AND prompt_id IS NOT NULL));

-- NaN sorts above 'Infinity' in PostgreSQL, so "< 'Infinity'" also refuses NaN.
CREATE TABLE evaluation_results (
  job_id uuid NOT NULL REFERENCES fine_tuning_jobs (id) ON DELETE CASCADE,
  position integer NOT NULL CHECK (position >= 0),
  adapter_id uuid REFERENCES adapters (id) ON DELETE SET NULL,
  adapter_name text NOT NULL DEFAULT '',
  loss double precision NOT NULL CHECK (loss >= 0 AND loss < 'Infinity'),
  perplexity double precision NOT NULL CHECK (perplexity >= 0 AND perplexity < 'Infinity'),
  examples bigint NOT NULL CHECK (examples >= 0),
  tokens bigint NOT NULL CHECK (tokens >= 0),
  label_tokens bigint NOT NULL CHECK (label_tokens >= 0),
  samples jsonb NOT NULL DEFAULT '[]',
  generation_tokens_per_second double precision NOT NULL DEFAULT 0
    CHECK (generation_tokens_per_second >= 0 AND generation_tokens_per_second < 'Infinity'),
  create_time timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, position)
);

CREATE INDEX evaluation_results_adapter_idx ON evaluation_results (adapter_id);
