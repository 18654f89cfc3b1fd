-- The fingerprint of a config document, computed as the seeded defaults' were. $1 type, $2 content (json).
SELECT config_fingerprint($1::text, $2::jsonb) AS fingerprint
