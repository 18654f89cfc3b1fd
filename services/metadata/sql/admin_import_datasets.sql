-- Inserts rows of an exported document into datasets, keeping their ids and times, for ImportDatabase.
-- $1 the rows: a JSON array of objects whose keys are the columns of datasets.
INSERT INTO datasets SELECT * FROM jsonb_populate_recordset(NULL::datasets, $1::jsonb)
