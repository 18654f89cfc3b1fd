-- Bearer tokens for the public API and the trainers: only the SHA-256 of each secret is kept.

CREATE TABLE api_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE,
  role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin', 'trainer')),
  description text NOT NULL DEFAULT '',
  secret_sha256 text NOT NULL UNIQUE CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
  prefix text NOT NULL,
  created_by text NOT NULL DEFAULT '',
  create_time timestamptz NOT NULL DEFAULT now(),
  expire_time timestamptz,
  revoke_time timestamptz,
  last_use_time timestamptz
);

-- What the API shows of a token: everything but the hash, times as microseconds since the epoch.
CREATE VIEW api_token_records AS
SELECT id::text AS id, name, role, description, prefix, created_by,
       (extract(epoch FROM create_time) * 1000000)::bigint AS create_us,
       (extract(epoch FROM expire_time) * 1000000)::bigint AS expire_us,
       (extract(epoch FROM revoke_time) * 1000000)::bigint AS revoke_us,
       (extract(epoch FROM last_use_time) * 1000000)::bigint AS last_use_us,
       revoke_time IS NULL AND (expire_time IS NULL OR expire_time > now()) AS active,
       create_time
FROM api_tokens;
