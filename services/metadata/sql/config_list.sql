-- A page of configs ordered by (create_time, id).
-- $1 create time (microseconds) of the last row of the previous page and $2 its id (both NULL: first page),
-- $3 type (NULL: any), $4 family (NULL: any), $5 per-family defaults only, $6 limit.
SELECT c.id::text AS id, c.name, c.description, c.type, c.content::text AS content, c.fingerprint, c.family, c.is_default, (extract(epoch FROM c.create_time) * 1000000)::bigint AS create_us, (extract(epoch FROM c.update_time) * 1000000)::bigint AS update_us
FROM configs c
WHERE ($2::uuid IS NULL OR (c.create_time, c.id) > ('epoch'::timestamptz + $1::bigint * interval '1 microsecond', $2::uuid))
  AND ($3::text IS NULL OR c.type = $3)
  AND ($4::text IS NULL OR c.family = $4)
  AND (NOT $5::boolean OR c.is_default)
ORDER BY c.create_time, c.id
LIMIT $6
