-- Marks a model as updated (a revision was added). $1 model id.
UPDATE models SET update_time = now() WHERE id = $1::uuid
