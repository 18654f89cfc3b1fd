-- A dataset with its latest revision and revision count, by source. $1 source_type, $2 source, $3 config.
SELECT d.id::text AS id, d.name, d.description, d.source_type, d.source, d.config, (extract(epoch FROM d.create_time) * 1000000)::bigint AS create_us, (extract(epoch FROM d.update_time) * 1000000)::bigint AS update_us,
  (SELECT count(*) FROM dataset_revisions c WHERE c.dataset_id = d.id) AS revision_count,
  r.id::text AS r_id, r.dataset_id::text AS r_dataset_id, r.revision_number AS r_revision_number, r.requested_revision AS r_requested_revision, r.commit_sha AS r_commit_sha, r.data_revision AS r_data_revision, r.data_commit_sha AS r_data_commit_sha, r.available_configs::text AS r_available_configs, r.fingerprint AS r_fingerprint, r.format AS r_format, r.features::text AS r_features, r.splits::text AS r_splits, r.files::text AS r_files, r.split_generated AS r_split_generated, r.split_seed AS r_split_seed, r.test_size AS r_test_size, (extract(epoch FROM r.create_time) * 1000000)::bigint AS r_create_us
FROM datasets d
LEFT JOIN LATERAL (SELECT * FROM dataset_revisions x WHERE x.dataset_id = d.id ORDER BY x.revision_number DESC LIMIT 1) r ON true
WHERE d.source_type = $1::text AND d.source = $2::text AND d.config = $3::text
