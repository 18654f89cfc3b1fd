// Reads a Hugging Face config.json (+ generation_config.json) of a supported causal-LM family into the
// shapes that matter for validation: the weight names/shapes of the checkpoint and the LoRA targets.
#ifndef TUNEFORGE_COMMON_MODEL_CONFIG_H_
#define TUNEFORGE_COMMON_MODEL_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace tuneforge {

struct ModelArchitecture {
  std::string family;        // llama | mistral | qwen2 | phi3 | gemma
  std::string architecture;  // architectures[0], e.g. "LlamaForCausalLM" (empty if absent)
  std::string model_type;    // as written in config.json (empty if absent)
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // per attention head; gemma gives it, otherwise hidden_size / num_attention_heads
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = true;     // absent -> true
  bool qkv_bias = false;               // qwen2: always; llama/gemma: attention_bias
  bool o_bias = false;                 // llama/gemma attention_bias also biases o_proj
  bool mlp_bias = false;               // llama mlp_bias
  bool fused_qkv = false;              // phi3: qkv_proj = [q | k | v]
  bool fused_gate_up = false;          // phi3: gate_up_proj = [gate | up]
  std::vector<int64_t> bos_token_ids;  // config.json, else generation_config.json; may be empty
  std::vector<int64_t> eos_token_ids;
  int64_t parameter_count = 0;  // sum of the elements of ExpectedWeightShapes (a tied head counts once)
};

// {"llama", "mistral", "qwen2", "phi3", "gemma"}
const std::vector<std::string>& SupportedFamilies();

// Family from model_type first, else architectures[0]. Defaults follow transformers 4.44. Errors are
// INVALID_ARGUMENT starting with `label` (e.g. "config.json") and naming the key; errors in
// `generation_config_json` (may be empty) name generation_config.json.
absl::StatusOr<ModelArchitecture> ParseModelConfig(std::string_view config_json,
                                                   std::string_view generation_config_json, std::string_view label);

// Every weight of the Hugging Face checkpoint by HF name with its shape
// ("model.embed_tokens.weight" -> {V, H}, ...; "lm_head.weight" only when untied).
std::map<std::string, std::vector<int64_t>> ExpectedWeightShapes(const ModelArchitecture& arch);

// Linear modules a LoRA adapter can target, by PEFT module name -> {in_features, out_features}:
// q_proj k_proj v_proj o_proj gate_proj up_proj down_proj (phi3: qkv_proj o_proj gate_up_proj down_proj).
std::map<std::string, std::pair<int64_t, int64_t>> LoraTargetShapes(const ModelArchitecture& arch);

// "self_attn" or "mlp": the block of layer i that holds a LoraTargetShapes module.
std::string_view LoraTargetBlock(std::string_view module);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_MODEL_CONFIG_H_
