-- Inserts a model; the server generates the id. $1 name, $2 description, $3 source_type, $4 source, $5 family.
INSERT INTO models (name, description, source_type, source, family)
VALUES ($1, $2, $3, $4, $5)
RETURNING id::text AS id
