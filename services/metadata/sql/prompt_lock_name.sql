-- Serialises revisions of one prompt name until the transaction ends (there is no parent row to lock). $1 name.
SELECT pg_advisory_xact_lock(hashtextextended('tuneforge.prompt:' || $1::text, 0))
