-- Inserts an adapter; the server generates the id. $1 name, $2 description, $3 source_type, $4 source, $5 commit_sha,
-- $6 model_revision_id, $7 job_id (NULL: none), $8 peft_type, $9 rank, $10 alpha, $11 target_modules (json),
-- $12 use_rslora, $13 fingerprint, $14 files (json).
INSERT INTO adapters (name, description, source_type, source, commit_sha, model_revision_id, job_id, peft_type, rank,
                      alpha, target_modules, use_rslora, fingerprint, files)
VALUES ($1, $2, $3, $4, $5, $6::uuid, $7::uuid, $8, $9::integer, $10::double precision, $11::jsonb, $12::boolean, $13,
        $14::jsonb)
RETURNING id::text AS id
