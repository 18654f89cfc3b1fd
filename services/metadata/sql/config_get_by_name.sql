-- A config by name. $1 name.
SELECT c.id::text AS id, c.name, c.description, c.type, c.content::text AS content, c.fingerprint, c.family, c.is_default, (extract(epoch FROM c.create_time) * 1000000)::bigint AS create_us, (extract(epoch FROM c.update_time) * 1000000)::bigint AS update_us
FROM configs c
WHERE c.name = $1
