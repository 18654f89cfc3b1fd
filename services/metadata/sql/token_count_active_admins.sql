-- How many admin tokens can still be used.
SELECT count(*) AS n FROM api_tokens
WHERE role = 'admin' AND revoke_time IS NULL AND (expire_time IS NULL OR expire_time > now())
