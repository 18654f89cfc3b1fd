-- Inserts rows of an exported document into evaluation_results, keeping their times, for ImportDatabase.
-- $1 the rows: a JSON array of objects whose keys are the columns of evaluation_results.
INSERT INTO evaluation_results SELECT * FROM jsonb_populate_recordset(NULL::evaluation_results, $1::jsonb)
