-- Records that token $1 (id as text) was used.
UPDATE api_tokens SET last_use_time = now() WHERE id::text = $1
