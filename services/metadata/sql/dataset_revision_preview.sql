-- The stored preview rows of a revision (json object: split name -> array of rows). $1 revision id.
SELECT preview::text AS preview FROM dataset_revisions WHERE id = $1::uuid
