-- Records the config of a Hub dataset added before configs were recorded (its config is ''). $1 dataset id, $2 config.
UPDATE datasets SET config = $2::text WHERE id = $1::uuid AND config = ''
