-- Inserts rows of an exported document into adapters, keeping their ids and times, for ImportDatabase.
-- $1 the rows: a JSON array of objects whose keys are the columns of adapters.
INSERT INTO adapters SELECT * FROM jsonb_populate_recordset(NULL::adapters, $1::jsonb)
