-- The metadata store: models, datasets, prompts, configs, adapters and export requests.
-- Every record has a server-generated UUID and create/update times. Revisions are immutable.
-- Foreign keys are RESTRICT everywhere: a removal that leaves dependents fails unless the service removes them first.

CREATE TABLE models (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  source_type text NOT NULL CHECK (source_type IN ('huggingface', 'local', 'trained')),
  source text NOT NULL,
  family text NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source_type, source)
);

CREATE TABLE model_revisions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  model_id uuid NOT NULL REFERENCES models (id),
  revision_number integer NOT NULL CHECK (revision_number > 0),
  requested_revision text NOT NULL DEFAULT '',
  commit_sha text NOT NULL DEFAULT '',
  fingerprint text NOT NULL,
  family text NOT NULL,
  architecture text NOT NULL DEFAULT '',
  files jsonb NOT NULL,
  bos_token_ids jsonb NOT NULL,
  eos_token_ids jsonb NOT NULL,
  parameter_count bigint NOT NULL,
  config_json text NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  UNIQUE (model_id, revision_number),
  UNIQUE (model_id, fingerprint)
);

CREATE TABLE datasets (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  source_type text NOT NULL CHECK (source_type IN ('huggingface', 'local')),
  source text NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source_type, source)
);

CREATE TABLE dataset_revisions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  dataset_id uuid NOT NULL REFERENCES datasets (id),
  revision_number integer NOT NULL CHECK (revision_number > 0),
  requested_revision text NOT NULL DEFAULT '',
  commit_sha text NOT NULL DEFAULT '',
  fingerprint text NOT NULL,
  format text NOT NULL,
  features jsonb NOT NULL,
  splits jsonb NOT NULL,
  preview jsonb NOT NULL,
  files jsonb NOT NULL,
  split_generated boolean NOT NULL,
  split_seed bigint NOT NULL,
  test_size double precision NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  UNIQUE (dataset_id, revision_number),
  UNIQUE (dataset_id, fingerprint)
);

CREATE TABLE prompts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  revision_number integer NOT NULL CHECK (revision_number > 0),
  description text NOT NULL DEFAULT '',
  dataset_revision_id uuid NOT NULL REFERENCES dataset_revisions (id),
  mode text NOT NULL CHECK (mode IN ('template', 'chat')),
  input_template text NOT NULL DEFAULT '',
  completion_template text NOT NULL DEFAULT '',
  messages_column text NOT NULL DEFAULT '',
  slots jsonb NOT NULL,
  fingerprint text NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  UNIQUE (name, revision_number),
  UNIQUE (name, fingerprint)
);

CREATE TABLE configs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text UNIQUE,
  description text NOT NULL DEFAULT '',
  type text NOT NULL CHECK (type IN ('lora', 'training', 'generation', 'quantization')),
  content jsonb NOT NULL,
  fingerprint text NOT NULL,
  family text NOT NULL DEFAULT '',
  is_default boolean NOT NULL DEFAULT false,
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now(),
  UNIQUE (type, family, fingerprint)
);

CREATE TABLE adapters (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  source_type text NOT NULL CHECK (source_type IN ('huggingface', 'local', 'trained')),
  source text NOT NULL,
  commit_sha text NOT NULL DEFAULT '',
  model_revision_id uuid NOT NULL REFERENCES model_revisions (id),
  job_id uuid,
  peft_type text NOT NULL,
  rank integer NOT NULL CHECK (rank > 0),
  alpha double precision NOT NULL,
  target_modules jsonb NOT NULL,
  use_rslora boolean NOT NULL DEFAULT false,
  fingerprint text NOT NULL,
  files jsonb NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source_type, source, fingerprint)
);

CREATE TABLE model_exports (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  model_revision_id uuid NOT NULL REFERENCES model_revisions (id),
  adapter_id uuid NOT NULL REFERENCES adapters (id),
  type text NOT NULL CHECK (type IN ('merged', 'adapter')),
  destination_path text NOT NULL UNIQUE,
  exported_model_name text NOT NULL DEFAULT '',
  state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX model_revisions_model_idx ON model_revisions (model_id, revision_number DESC);
CREATE INDEX dataset_revisions_dataset_idx ON dataset_revisions (dataset_id, revision_number DESC);
CREATE INDEX prompts_dataset_revision_idx ON prompts (dataset_revision_id);
CREATE INDEX adapters_model_revision_idx ON adapters (model_revision_id);
CREATE INDEX model_exports_model_revision_idx ON model_exports (model_revision_id);
CREATE INDEX model_exports_adapter_idx ON model_exports (adapter_id);
CREATE INDEX configs_created_idx ON configs (create_time, id);
