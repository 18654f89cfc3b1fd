-- Inserts rows of an exported document into dataset_revisions, keeping their ids and times, for ImportDatabase.
-- $1 the rows: a JSON array of objects whose keys are the columns of dataset_revisions.
INSERT INTO dataset_revisions SELECT * FROM jsonb_populate_recordset(NULL::dataset_revisions, $1::jsonb)
