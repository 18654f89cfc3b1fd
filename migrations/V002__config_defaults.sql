-- Per-family default configs, returned by ListConfigs for a model of that family.
-- The fingerprint is computed by the database the same way AddConfig computes it (config_fingerprint).

CREATE FUNCTION config_fingerprint(config_type text, content jsonb) RETURNS text
  LANGUAGE sql IMMUTABLE AS
  $$ SELECT encode(sha256(convert_to(config_type || E'\n' || content::text, 'UTF8')), 'hex') $$;

INSERT INTO configs (name, description, type, content, fingerprint, family, is_default)
SELECT name, description, type, content::jsonb, config_fingerprint(type, content::jsonb), family, true
FROM (VALUES
  ('llama-lora-default', 'Default lora settings for llama models', 'lora', '{"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], "use_rslora": false}', 'llama'),
  ('llama-training-default', 'Default training settings for llama models', 'training', '{"num_epochs": 1, "learning_rate": 0.0002, "lr_scheduler": "cosine", "warmup_ratio": 0.03, "per_device_batch_size": 4, "gradient_accumulation_steps": 4, "max_seq_len": 2048, "weight_decay": 0, "max_grad_norm": 1, "seed": 42, "dtype": "bf16", "device": "auto", "train_on_input": false}', 'llama'),
  ('llama-generation-default', 'Default generation settings for llama models', 'generation', '{"max_new_tokens": 256, "temperature": 0.7, "top_p": 0.9, "do_sample": true}', 'llama'),
  ('llama-quantization-default', 'Default quantization settings for llama models', 'quantization', '{"method": "none"}', 'llama'),
  ('mistral-lora-default', 'Default lora settings for mistral models', 'lora', '{"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], "use_rslora": false}', 'mistral'),
  ('mistral-training-default', 'Default training settings for mistral models', 'training', '{"num_epochs": 1, "learning_rate": 0.0002, "lr_scheduler": "cosine", "warmup_ratio": 0.03, "per_device_batch_size": 4, "gradient_accumulation_steps": 4, "max_seq_len": 2048, "weight_decay": 0, "max_grad_norm": 1, "seed": 42, "dtype": "bf16", "device": "auto", "train_on_input": false}', 'mistral'),
  ('mistral-generation-default', 'Default generation settings for mistral models', 'generation', '{"max_new_tokens": 256, "temperature": 0.7, "top_p": 0.9, "do_sample": true}', 'mistral'),
  ('mistral-quantization-default', 'Default quantization settings for mistral models', 'quantization', '{"method": "none"}', 'mistral'),
  ('qwen2-lora-default', 'Default lora settings for qwen2 models', 'lora', '{"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], "use_rslora": false}', 'qwen2'),
  ('qwen2-training-default', 'Default training settings for qwen2 models', 'training', '{"num_epochs": 1, "learning_rate": 0.0002, "lr_scheduler": "cosine", "warmup_ratio": 0.03, "per_device_batch_size": 4, "gradient_accumulation_steps": 4, "max_seq_len": 2048, "weight_decay": 0, "max_grad_norm": 1, "seed": 42, "dtype": "bf16", "device": "auto", "train_on_input": false}', 'qwen2'),
  ('qwen2-generation-default', 'Default generation settings for qwen2 models', 'generation', '{"max_new_tokens": 256, "temperature": 0.7, "top_p": 0.9, "do_sample": true}', 'qwen2'),
  ('qwen2-quantization-default', 'Default quantization settings for qwen2 models', 'quantization', '{"method": "none"}', 'qwen2'),
  ('phi3-lora-default', 'Default lora settings for phi3 models', 'lora', '{"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"], "use_rslora": false}', 'phi3'),
  ('phi3-training-default', 'Default training settings for phi3 models', 'training', '{"num_epochs": 1, "learning_rate": 0.0002, "lr_scheduler": "cosine", "warmup_ratio": 0.03, "per_device_batch_size": 4, "gradient_accumulation_steps": 4, "max_seq_len": 2048, "weight_decay": 0, "max_grad_norm": 1, "seed": 42, "dtype": "bf16", "device": "auto", "train_on_input": false}', 'phi3'),
  ('phi3-generation-default', 'Default generation settings for phi3 models', 'generation', '{"max_new_tokens": 256, "temperature": 0.7, "top_p": 0.9, "do_sample": true}', 'phi3'),
  ('phi3-quantization-default', 'Default quantization settings for phi3 models', 'quantization', '{"method": "none"}', 'phi3'),
  ('gemma-lora-default', 'Default lora settings for gemma models', 'lora', '{"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], "use_rslora": false}', 'gemma'),
  ('gemma-training-default', 'Default training settings for gemma models', 'training', '{"num_epochs": 1, "learning_rate": 0.0002, "lr_scheduler": "cosine", "warmup_ratio": 0.03, "per_device_batch_size": 4, "gradient_accumulation_steps": 4, "max_seq_len": 2048, "weight_decay": 0, "max_grad_norm": 1, "seed": 42, "dtype": "bf16", "device": "auto", "train_on_input": false}', 'gemma'),
  ('gemma-generation-default', 'Default generation settings for gemma models', 'generation', '{"max_new_tokens": 256, "temperature": 0.7, "top_p": 0.9, "do_sample": true, "top_k": 64}', 'gemma'),
  ('gemma-quantization-default', 'Default quantization settings for gemma models', 'quantization', '{"method": "none"}', 'gemma')
) AS d (name, description, type, content, family);
