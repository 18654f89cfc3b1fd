-- The results of evaluation jobs, by job and position. $1 job ids json array, $2 whether to include the samples
-- ('[]' when not).
SELECT job_id::text AS job_id, position, coalesce(adapter_id::text, '') AS adapter_id, adapter_name, loss, perplexity, examples, tokens, label_tokens,
       CASE WHEN $2::boolean THEN samples::text ELSE '[]' END AS samples, generation_tokens_per_second
FROM evaluation_results WHERE job_id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)
ORDER BY job_id, position
