-- Removes a config. $1 id.
DELETE FROM configs WHERE id = $1::uuid
