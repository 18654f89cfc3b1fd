-- Inserts rows of an exported document into configs, keeping their ids and times, for ImportDatabase; skips the
-- per-family defaults that the migrations already seeded (same type, family and fingerprint).
-- $1 the rows: a JSON array of objects whose keys are the columns of configs.
INSERT INTO configs
SELECT r.* FROM jsonb_populate_recordset(NULL::configs, $1::jsonb) r
WHERE NOT (r.is_default IS TRUE AND EXISTS (
  SELECT 1 FROM configs c WHERE c.type = r.type AND c.family = r.family AND c.fingerprint = r.fingerprint))
