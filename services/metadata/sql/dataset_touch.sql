-- Marks a dataset as updated (a revision was added). $1 dataset id.
UPDATE datasets SET update_time = now() WHERE id = $1::uuid
