-- Inserts rows of an exported document into model_revisions, keeping their ids and times, for ImportDatabase.
-- $1 the rows: a JSON array of objects whose keys are the columns of model_revisions.
INSERT INTO model_revisions SELECT * FROM jsonb_populate_recordset(NULL::model_revisions, $1::jsonb)
