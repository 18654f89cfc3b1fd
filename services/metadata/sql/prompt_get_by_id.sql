-- One prompt revision by id, with the dataset of its dataset revision. $1 revision id.
SELECT p.id::text AS id, p.name, p.description, p.revision_number, r.dataset_id::text AS dataset_id,
       p.dataset_revision_id::text AS dataset_revision_id, p.mode, p.input_template, p.completion_template,
       p.messages_column, p.message_format, p.instruction_column, p.input_column, p.output_column, p.use_chat_template,
       p.slots::text AS slots, p.fingerprint, (extract(epoch FROM p.create_time) * 1000000)::bigint AS create_us
FROM prompts p JOIN dataset_revisions r ON r.id = p.dataset_revision_id
WHERE p.id = $1::uuid
