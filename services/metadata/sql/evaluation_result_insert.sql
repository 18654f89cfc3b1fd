-- Records one candidate's result of an evaluation job. $1 job id, $2 position (0 the base), $3 adapter id or NULL,
-- $4 adapter name, $5 loss, $6 perplexity, $7 examples, $8 tokens, $9 label tokens, $10 samples json,
-- $11 generation tokens per second.
INSERT INTO evaluation_results (job_id, position, adapter_id, adapter_name, loss, perplexity, examples, tokens, label_tokens, samples, generation_tokens_per_second)
VALUES ($1::uuid, $2, $3::uuid, $4, $5, $6, $7, $8, $9, $10::jsonb, $11)
