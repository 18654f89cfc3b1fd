-- Prompt shapes beyond {column} templates and OpenAI messages: a chat prompt's message format (OpenAI
-- {"role", "content"} or ShareGPT {"from", "value"}), and Alpaca prompts (instruction / input / output columns,
-- rendered as Stanford Alpaca's prompt text or as chat messages with the model's chat template).

ALTER TABLE prompts DROP CONSTRAINT prompts_mode_check;
ALTER TABLE prompts ADD CONSTRAINT prompts_mode_check CHECK (mode IN ('template', 'chat', 'alpaca'));
ALTER TABLE prompts
  ADD COLUMN message_format text NOT NULL DEFAULT '' CHECK (message_format IN ('', 'openai', 'sharegpt')),
  ADD COLUMN instruction_column text NOT NULL DEFAULT '',
  ADD COLUMN input_column text NOT NULL DEFAULT '',
  ADD COLUMN output_column text NOT NULL DEFAULT '',
  ADD COLUMN use_chat_template boolean NOT NULL DEFAULT false;
-- Chat prompts written before message formats existed read OpenAI messages.
UPDATE prompts SET message_format = 'openai' WHERE mode = 'chat';
