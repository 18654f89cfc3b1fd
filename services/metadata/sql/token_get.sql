-- One token by id or name ($1: id as text, $2: name).
SELECT * FROM api_token_records WHERE id = $1 OR name = $2
