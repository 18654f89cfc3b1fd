-- Inserts rows of an exported document into fine_tuning_jobs, keeping their ids and times, for ImportDatabase.
-- $1 the rows: a JSON array of objects whose keys are the columns of fine_tuning_jobs.
INSERT INTO fine_tuning_jobs SELECT * FROM jsonb_populate_recordset(NULL::fine_tuning_jobs, $1::jsonb)
