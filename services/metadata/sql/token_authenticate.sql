-- The active token whose secret hashes to $1, if any.
SELECT id::text AS id, name, role,
       (extract(epoch FROM expire_time) * 1000000)::bigint AS expire_us,
       (extract(epoch FROM last_use_time) * 1000000)::bigint AS last_use_us
FROM api_tokens
WHERE secret_sha256 = $1 AND revoke_time IS NULL AND (expire_time IS NULL OR expire_time > now())
