-- Tokens newest first; $1: also revoked and expired ones.
SELECT * FROM api_token_records WHERE $1::boolean OR active ORDER BY create_time DESC, name
