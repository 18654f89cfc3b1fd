-- Adds the next revision of a dataset (the caller holds dataset_lock).
-- $1 dataset_id, $2 requested_revision, $3 commit_sha, $4 fingerprint, $5 format, $6 features (json), $7 splits (json),
-- $8 preview (json: split -> rows), $9 files (json), $10 split_generated, $11 split_seed, $12 test_size,
-- $13 data_revision, $14 data_commit_sha, $15 available_configs (json).
INSERT INTO dataset_revisions (dataset_id, revision_number, requested_revision, commit_sha, fingerprint, format,
                               features, splits, preview, files, split_generated, split_seed, test_size,
                               data_revision, data_commit_sha, available_configs)
SELECT $1::uuid, coalesce(max(revision_number), 0) + 1, $2::text, $3::text, $4::text, $5::text, $6::jsonb, $7::jsonb,
       $8::jsonb, $9::jsonb, $10::boolean, $11::bigint, $12::double precision, $13::text, $14::text, $15::jsonb
FROM dataset_revisions WHERE dataset_id = $1::uuid
RETURNING id::text AS id
