-- Revokes token $1 (id as text) unless it already is.
UPDATE api_tokens SET revoke_time = now() WHERE id::text = $1 AND revoke_time IS NULL
