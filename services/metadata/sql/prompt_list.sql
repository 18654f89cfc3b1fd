-- A page of prompts ordered by name, the latest revision of each.
-- $1 name to start after (NULL: first page), $2 name prefix (NULL: any),
-- $3 dataset id of the latest revision (NULL: any),
-- $4 limit.
SELECT * FROM (
  SELECT DISTINCT ON (p.name) p.id::text AS id, p.name, p.description, p.revision_number,
         r.dataset_id::text AS dataset_id, p.dataset_revision_id::text AS dataset_revision_id, p.mode,
         p.input_template, p.completion_template, p.messages_column, p.message_format, p.instruction_column,
         p.input_column, p.output_column, p.use_chat_template, p.slots::text AS slots, p.fingerprint,
         (extract(epoch FROM p.create_time) * 1000000)::bigint AS create_us
  FROM prompts p JOIN dataset_revisions r ON r.id = p.dataset_revision_id
  WHERE ($1::text IS NULL OR p.name > $1::text)
    AND ($2::text IS NULL OR left(p.name, length($2::text)) = $2::text)
  ORDER BY p.name, p.revision_number DESC
) latest
WHERE ($3::text IS NULL OR latest.dataset_id = $3::text)
ORDER BY latest.name
LIMIT $4::integer
