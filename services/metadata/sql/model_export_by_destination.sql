-- An export request writing to a destination, if any. $1 destination_path.
SELECT id::text AS id FROM model_exports WHERE destination_path = $1
