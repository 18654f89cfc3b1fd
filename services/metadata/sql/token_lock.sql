-- Serialises bootstrap between servers sharing one database (held until the transaction ends).
SELECT pg_advisory_xact_lock(hashtext('tuneforge.api_tokens'))
