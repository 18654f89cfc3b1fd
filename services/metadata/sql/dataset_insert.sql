-- Inserts a dataset; the server generates the id. $1 name, $2 description, $3 source_type, $4 source,
-- $5 config.
INSERT INTO datasets (name, description, source_type, source, config)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::text)
RETURNING id::text AS id
