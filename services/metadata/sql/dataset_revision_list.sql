-- A page of a dataset's revisions, newest first.
-- $1 dataset id, $2 revision number to start below (NULL: from the newest), $3 limit.
SELECT r.id::text AS r_id, r.dataset_id::text AS r_dataset_id, r.revision_number AS r_revision_number, r.requested_revision AS r_requested_revision, r.commit_sha AS r_commit_sha, r.data_revision AS r_data_revision, r.data_commit_sha AS r_data_commit_sha, r.available_configs::text AS r_available_configs, r.fingerprint AS r_fingerprint, r.format AS r_format, r.features::text AS r_features, r.splits::text AS r_splits, r.files::text AS r_files, r.split_generated AS r_split_generated, r.split_seed AS r_split_seed, r.test_size AS r_test_size, (extract(epoch FROM r.create_time) * 1000000)::bigint AS r_create_us
FROM dataset_revisions r
WHERE r.dataset_id = $1::uuid AND ($2::integer IS NULL OR r.revision_number < $2::integer)
ORDER BY r.revision_number DESC
LIMIT $3::integer
