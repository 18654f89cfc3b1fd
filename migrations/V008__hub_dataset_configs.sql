-- Hub datasets as the datasets library sees them: a repo's configs (subsets) are separate datasets, and a revision
-- records where its files are read from (the repo at its commit, or the Hub's Parquet conversion branch at that
-- branch's commit) and which configs the repo has.

ALTER TABLE datasets ADD COLUMN config text NOT NULL DEFAULT '';
ALTER TABLE datasets DROP CONSTRAINT datasets_source_type_source_key;
ALTER TABLE datasets ADD CONSTRAINT datasets_source_type_source_config_key UNIQUE (source_type, source, config);

ALTER TABLE dataset_revisions
  ADD COLUMN data_revision text NOT NULL DEFAULT '',
  ADD COLUMN data_commit_sha text NOT NULL DEFAULT '',
  ADD COLUMN available_configs jsonb NOT NULL DEFAULT '[]';
-- Revisions recorded before read the repo's own files at their commit.
UPDATE dataset_revisions SET data_commit_sha = commit_sha;
