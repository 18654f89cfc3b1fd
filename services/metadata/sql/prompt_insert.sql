-- Adds the next revision of a prompt (the caller holds prompt_lock_name).
-- $1 name, $2 description, $3 dataset_revision_id, $4 mode, $5 input_template, $6 completion_template,
-- $7 messages_column, $8 slots (json array), $9 fingerprint, $10 message_format, $11 instruction_column,
-- $12 input_column, $13 output_column, $14 use_chat_template.
INSERT INTO prompts (name, revision_number, description, dataset_revision_id, mode, input_template,
                     completion_template, messages_column, slots, fingerprint, message_format, instruction_column,
                     input_column, output_column, use_chat_template)
SELECT $1::text, coalesce(max(revision_number), 0) + 1, $2::text, $3::uuid, $4::text, $5::text, $6::text, $7::text,
       $8::jsonb, $9::text, $10::text, $11::text, $12::text, $13::text, $14::boolean
FROM prompts WHERE name = $1::text
RETURNING id::text AS id
