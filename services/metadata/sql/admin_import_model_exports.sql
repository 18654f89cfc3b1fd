-- Inserts rows of an exported document into model_exports, keeping their ids and times, for ImportDatabase.
-- $1 the rows: a JSON array of objects whose keys are the columns of model_exports.
INSERT INTO model_exports SELECT * FROM jsonb_populate_recordset(NULL::model_exports, $1::jsonb)
