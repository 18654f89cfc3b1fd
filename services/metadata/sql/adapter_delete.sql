-- Removes an adapter row (its export requests are removed first). $1 adapter id.
DELETE FROM adapters WHERE id = $1::uuid
