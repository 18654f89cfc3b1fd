-- Inserts a dataset; the server generates the id. $1 name, $2 description, $3 source_type, $4 source.
INSERT INTO datasets (name, description, source_type, source)
VALUES ($1::text, $2::text, $3::text, $4::text)
RETURNING id::text AS id
