-- Removes every revision of a prompt. $1 name.
DELETE FROM prompts WHERE name = $1::text
