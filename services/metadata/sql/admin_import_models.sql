-- Inserts rows of an exported document into models, keeping their ids and times, for ImportDatabase.
-- $1 the rows: a JSON array of objects whose keys are the columns of models.
INSERT INTO models SELECT * FROM jsonb_populate_recordset(NULL::models, $1::jsonb)
