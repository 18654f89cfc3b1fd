-- Inserts a user config unless identical content of the type exists (then no row comes back).
-- $1 name (NULL: none), $2 description, $3 type, $4 content (json).
INSERT INTO configs (name, description, type, content, fingerprint)
VALUES ($1, $2, $3::text, $4::jsonb, config_fingerprint($3::text, $4::jsonb))
ON CONFLICT (type, family, fingerprint) DO NOTHING
RETURNING id::text AS id, name, description, type, content::text AS content, fingerprint, family, is_default,
  (extract(epoch FROM create_time) * 1000000)::bigint AS create_us,
  (extract(epoch FROM update_time) * 1000000)::bigint AS update_us
