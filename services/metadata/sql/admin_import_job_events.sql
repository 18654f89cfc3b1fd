-- Inserts rows of an exported document into job_events, keeping their ids and times, for ImportDatabase.
-- $1 the rows: a JSON array of objects whose keys are the columns of job_events.
INSERT INTO job_events SELECT * FROM jsonb_populate_recordset(NULL::job_events, $1::jsonb)
