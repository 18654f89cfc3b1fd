-- Inserts rows of an exported document into job_checkpoints, keeping their ids and times, for ImportDatabase.
-- $1 the rows: a JSON array of objects whose keys are the columns of job_checkpoints.
INSERT INTO job_checkpoints SELECT * FROM jsonb_populate_recordset(NULL::job_checkpoints, $1::jsonb)
