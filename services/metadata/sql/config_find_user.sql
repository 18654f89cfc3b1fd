-- The user config (not a per-family default) with this type and content. $1 type, $2 fingerprint.
SELECT c.id::text AS id, c.name, c.description, c.type, c.content::text AS content, c.fingerprint, c.family, c.is_default, (extract(epoch FROM c.create_time) * 1000000)::bigint AS create_us, (extract(epoch FROM c.update_time) * 1000000)::bigint AS update_us
FROM configs c
WHERE c.type = $1 AND c.family = '' AND c.fingerprint = $2
