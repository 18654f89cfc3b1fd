-- A new token. $1 name, $2 role, $3 description, $4 secret_sha256, $5 prefix, $6 created_by, $7 seconds to expiry (NULL: never).
INSERT INTO api_tokens (name, role, description, secret_sha256, prefix, created_by, expire_time)
VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7::bigint IS NULL THEN NULL ELSE now() + make_interval(secs => $7::bigint) END)
ON CONFLICT (name) DO NOTHING
RETURNING id::text AS id
