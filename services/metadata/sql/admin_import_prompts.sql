-- Inserts rows of an exported document into prompts, keeping their ids and times, for ImportDatabase.
-- $1 the rows: a JSON array of objects whose keys are the columns of prompts.
INSERT INTO prompts SELECT * FROM jsonb_populate_recordset(NULL::prompts, $1::jsonb)
