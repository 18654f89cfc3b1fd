// config.json parsing for the supported families. Families are rows of one table: what differs between
// them (defaults, biases, fused projections) is data, not code paths.
#include "common/model_config.h"

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json_limits.h"
#include "common/status_macros.h"

namespace tuneforge {
namespace {

using Json = nlohmann::json;

// Our abseil's string_view is its own type, not std::string_view; StrCat needs it.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// What transformers 4.44 does for one model_type.
struct FamilyRow {
  std::string_view family;
  std::string_view model_type;
  std::string_view architecture;
  int64_t default_max_position_embeddings;
  int64_t default_num_key_value_heads;  // 0: num_attention_heads
  int64_t default_head_dim;             // 0: hidden_size / num_attention_heads
  bool qkv_bias_always;                 // q/k/v always have a bias, o_proj never
  bool attention_bias_key;              // "attention_bias" biases q, k, v and o
  bool mlp_bias_key;                    // "mlp_bias" biases gate, up and down
  bool fused;                           // qkv_proj and gate_up_proj
};

constexpr FamilyRow kFamilies[] = {
    {"llama", "llama", "LlamaForCausalLM", 2048, 0, 0, false, true, true, false},
    {"mistral", "mistral", "MistralForCausalLM", 4096 * 32, 8, 0, false, false, false, false},
    {"qwen2", "qwen2", "Qwen2ForCausalLM", 32768, 32, 0, true, false, false, false},
    {"phi3", "phi3", "Phi3ForCausalLM", 4096, 0, 0, false, false, false, true},
    {"gemma", "gemma", "GemmaForCausalLM", 8192, 16, 256, false, true, false, false},
};

// Shape fields above this are certainly not a real model and would overflow the parameter count.
constexpr int64_t kMaxDimension = int64_t{1} << 24;
// Every layer gets its own entries in ExpectedWeightShapes; real models have at most a few hundred.
constexpr int64_t kMaxLayers = 4096;

std::string FamilyList() { return absl::StrJoin(SupportedFamilies(), ", "); }

absl::Status Invalid(absl::string_view label, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(label, ": ", what));
}

// The label of the generation config that sits next to `label`.
std::string GenerationConfigLabel(absl::string_view label) {
  constexpr absl::string_view kConfig = "config.json";
  if (absl::EndsWith(label, kConfig)) {
    return absl::StrCat(label.substr(0, label.size() - kConfig.size()), "generation_config.json");
  }
  return "generation_config.json";
}

absl::StatusOr<Json> ParseJsonObject(absl::string_view text, absl::string_view label) {
  RETURN_IF_ERROR(CheckJsonDepth(std::string_view(text.data(), text.size()), kMaxJsonDepth,
                                 std::string_view(label.data(), label.size())));
  Json j;
  try {
    j = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return Invalid(label, absl::StrCat("is not valid JSON (", e.what(), "); fix or re-download the file"));
  }
  if (!j.is_object()) return Invalid(label, absl::StrCat("must be a JSON object, got ", j.type_name()));
  return j;
}

// nullptr when `key` is absent or null.
const Json* Field(const Json& obj, absl::string_view key) {
  auto it = obj.find(std::string_view(key.data(), key.size()));
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<int64_t> PositiveInt(const Json& v, absl::string_view key, int64_t max, absl::string_view label) {
  if (!v.is_number_integer()) {
    return Invalid(label, absl::StrCat(key, " must be a positive integer, got ", v.dump()));
  }
  if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(max) : v.get<int64_t>() > max) {
    return Invalid(label, absl::StrCat(key, " ", v.dump(), " is too large (at most ", max, ")"));
  }
  const int64_t x = v.get<int64_t>();
  if (x <= 0) return Invalid(label, absl::StrCat(key, " must be a positive integer, got ", x));
  return x;
}

absl::StatusOr<int64_t> RequiredPositiveInt(const Json& obj, absl::string_view key, absl::string_view label) {
  const Json* v = Field(obj, key);
  if (v == nullptr) {
    return Invalid(label,
                   absl::StrCat("required key '", key, "' is missing; this is not a complete ", "transformers config"));
  }
  return PositiveInt(*v, key, kMaxDimension, label);
}

absl::StatusOr<int64_t> OptionalPositiveInt(const Json& obj, absl::string_view key, int64_t fallback, int64_t max,
                                            absl::string_view label) {
  const Json* v = Field(obj, key);
  if (v == nullptr) return fallback;
  return PositiveInt(*v, key, max, label);
}

absl::StatusOr<bool> OptionalBool(const Json& obj, absl::string_view key, bool fallback, absl::string_view label) {
  const Json* v = Field(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return Invalid(label, absl::StrCat(key, " must be true or false, got ", v->dump()));
  return v->get<bool>();
}

// bos_token_id / eos_token_id: an id or a list of ids; absent or null gives an empty list.
absl::StatusOr<std::vector<int64_t>> TokenIds(const Json& obj, absl::string_view key, absl::string_view label) {
  std::vector<int64_t> ids;
  const Json* v = Field(obj, key);
  if (v == nullptr) return ids;
  auto add = [&](const Json& id) -> absl::Status {
    if (!id.is_number_integer() || (!id.is_number_unsigned() && id.get<int64_t>() < 0) ||
        (id.is_number_unsigned() && id.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))) {
      return Invalid(label, absl::StrCat(key, " must be a non-negative token id or a list of them, got ", v->dump()));
    }
    ids.push_back(id.get<int64_t>());
    return absl::OkStatus();
  };
  if (v->is_array()) {
    for (const Json& id : *v) RETURN_IF_ERROR(add(id));
  } else {
    RETURN_IF_ERROR(add(*v));
  }
  return ids;
}

absl::StatusOr<const FamilyRow*> DetectFamily(const Json& config, std::string* model_type, std::string* architecture,
                                              absl::string_view label) {
  if (const Json* v = Field(config, "model_type")) {
    if (!v->is_string()) return Invalid(label, absl::StrCat("model_type must be a string, got ", v->dump()));
    *model_type = v->get<std::string>();
  }
  if (const Json* v = Field(config, "architectures")) {
    if (!v->is_array() || (!v->empty() && !(*v)[0].is_string())) {
      return Invalid(label, absl::StrCat("architectures must be a list of class names, got ", v->dump()));
    }
    if (!v->empty()) *architecture = (*v)[0].get<std::string>();
  }
  const FamilyRow* row = nullptr;
  if (!model_type->empty()) {
    for (const FamilyRow& r : kFamilies) {
      if (r.model_type == *model_type) row = &r;
    }
    if (row == nullptr) {
      return Invalid(
          label, absl::StrCat("model_type '", *model_type, "' is not a causal LM family we support: ", FamilyList()));
    }
  } else if (!architecture->empty()) {
    for (const FamilyRow& r : kFamilies) {
      if (r.architecture == *architecture) row = &r;
    }
    if (row == nullptr) {
      return Invalid(label, absl::StrCat("architectures[0] '", *architecture,
                                         "' is not a causal LM family we support: ", FamilyList()));
    }
  } else {
    return Invalid(label, absl::StrCat("has neither model_type nor architectures, so the model family is unknown; "
                                       "we support: ",
                                       FamilyList()));
  }
  if (!architecture->empty() && !absl::EndsWith(*architecture, "ForCausalLM")) {
    return Invalid(label, absl::StrCat("architectures[0] '", *architecture, "' is not a causal LM (expected ",
                                       Av(row->architecture), "); use the base or causal-LM checkpoint"));
  }
  return row;
}

}  // namespace

const std::vector<std::string>& SupportedFamilies() {
  static const std::vector<std::string>* families = [] {
    auto* v = new std::vector<std::string>;
    for (const FamilyRow& r : kFamilies) v->emplace_back(r.family);
    return v;
  }();
  return *families;
}

std::string_view LoraTargetBlock(std::string_view module) {
  if (module == "gate_proj" || module == "up_proj" || module == "down_proj" || module == "gate_up_proj") return "mlp";
  return "self_attn";
}

absl::StatusOr<ModelArchitecture> ParseModelConfig(std::string_view config_json,
                                                   std::string_view generation_config_json, std::string_view label_in) {
  const absl::string_view label = Av(label_in);
  ASSIGN_OR_RETURN(Json config, ParseJsonObject(Av(config_json), label));
  ModelArchitecture arch;
  ASSIGN_OR_RETURN(const FamilyRow* row, DetectFamily(config, &arch.model_type, &arch.architecture, label));
  arch.family = std::string(row->family);

  ASSIGN_OR_RETURN(arch.vocab_size, RequiredPositiveInt(config, "vocab_size", label));
  ASSIGN_OR_RETURN(arch.hidden_size, RequiredPositiveInt(config, "hidden_size", label));
  ASSIGN_OR_RETURN(arch.intermediate_size, RequiredPositiveInt(config, "intermediate_size", label));
  ASSIGN_OR_RETURN(arch.num_hidden_layers, RequiredPositiveInt(config, "num_hidden_layers", label));
  if (arch.num_hidden_layers > kMaxLayers) {
    return Invalid(
        label, absl::StrCat("num_hidden_layers ", arch.num_hidden_layers, " is too large (at most ", kMaxLayers, ")"));
  }
  ASSIGN_OR_RETURN(arch.num_attention_heads, RequiredPositiveInt(config, "num_attention_heads", label));
  // An explicit null means "same as num_attention_heads" in every family; absent takes the class default.
  int64_t kv_default = row->default_num_key_value_heads;
  if (kv_default == 0 || config.contains("num_key_value_heads")) kv_default = arch.num_attention_heads;
  ASSIGN_OR_RETURN(arch.num_key_value_heads,
                   OptionalPositiveInt(config, "num_key_value_heads", kv_default, kMaxDimension, label));
  if (arch.num_attention_heads % arch.num_key_value_heads != 0) {
    return Invalid(label, absl::StrCat("num_attention_heads (", arch.num_attention_heads,
                                       ") must be a multiple of num_key_value_heads (", arch.num_key_value_heads, ")"));
  }
  if (Field(config, "head_dim") != nullptr || row->default_head_dim > 0) {
    ASSIGN_OR_RETURN(arch.head_dim,
                     OptionalPositiveInt(config, "head_dim", row->default_head_dim, kMaxDimension, label));
  } else {
    if (arch.hidden_size % arch.num_attention_heads != 0) {
      return Invalid(label,
                     absl::StrCat("hidden_size (", arch.hidden_size, ") must be a multiple of num_attention_heads (",
                                  arch.num_attention_heads, ") when head_dim is not given"));
    }
    arch.head_dim = arch.hidden_size / arch.num_attention_heads;
  }
  ASSIGN_OR_RETURN(
      arch.max_position_embeddings,
      OptionalPositiveInt(config, "max_position_embeddings", row->default_max_position_embeddings, INT64_MAX, label));

  // save_pretrained omits keys equal to PretrainedConfig's defaults, so an absent key means true.
  ASSIGN_OR_RETURN(arch.tie_word_embeddings, OptionalBool(config, "tie_word_embeddings", true, label));
  bool attention_bias = false;
  if (row->attention_bias_key) {
    ASSIGN_OR_RETURN(attention_bias, OptionalBool(config, "attention_bias", false, label));
  }
  arch.qkv_bias = row->qkv_bias_always || attention_bias;
  arch.o_bias = attention_bias;
  if (row->mlp_bias_key) {
    ASSIGN_OR_RETURN(arch.mlp_bias, OptionalBool(config, "mlp_bias", false, label));
  }
  arch.fused_qkv = row->fused;
  arch.fused_gate_up = row->fused;

  ASSIGN_OR_RETURN(arch.bos_token_ids, TokenIds(config, "bos_token_id", label));
  ASSIGN_OR_RETURN(arch.eos_token_ids, TokenIds(config, "eos_token_id", label));
  if (!generation_config_json.empty()) {
    const std::string gen_label = GenerationConfigLabel(label);
    ASSIGN_OR_RETURN(Json gen, ParseJsonObject(Av(generation_config_json), gen_label));
    ASSIGN_OR_RETURN(std::vector<int64_t> gen_bos, TokenIds(gen, "bos_token_id", gen_label));
    ASSIGN_OR_RETURN(std::vector<int64_t> gen_eos, TokenIds(gen, "eos_token_id", gen_label));
    if (arch.bos_token_ids.empty()) arch.bos_token_ids = std::move(gen_bos);
    if (arch.eos_token_ids.empty()) arch.eos_token_ids = std::move(gen_eos);
  }

  // Every dimension is <= 2^24, so each shape entry fits; their products and sum may not.
  uint64_t total = 0;
  for (const auto& [name, shape] : ExpectedWeightShapes(arch)) {
    uint64_t elements = 1;
    bool overflow = false;
    for (int64_t d : shape) overflow |= __builtin_mul_overflow(elements, static_cast<uint64_t>(d), &elements);
    overflow |= __builtin_add_overflow(total, elements, &total);
    if (overflow || total > static_cast<uint64_t>(INT64_MAX)) {
      return Invalid(label, "the sizes it gives add up to more parameters than we can count; check the values");
    }
  }
  arch.parameter_count = static_cast<int64_t>(total);
  return arch;
}

std::map<std::string, std::vector<int64_t>> ExpectedWeightShapes(const ModelArchitecture& arch) {
  const int64_t h = arch.hidden_size;
  const int64_t q_out = arch.num_attention_heads * arch.head_dim;
  const int64_t kv_out = arch.num_key_value_heads * arch.head_dim;
  const int64_t inter = arch.intermediate_size;
  std::map<std::string, std::vector<int64_t>> shapes;
  shapes["model.embed_tokens.weight"] = {arch.vocab_size, h};
  shapes["model.norm.weight"] = {h};
  if (!arch.tie_word_embeddings) shapes["lm_head.weight"] = {arch.vocab_size, h};
  for (int64_t i = 0; i < arch.num_hidden_layers; ++i) {
    const std::string layer = absl::StrCat("model.layers.", i, ".");
    shapes[layer + "input_layernorm.weight"] = {h};
    shapes[layer + "post_attention_layernorm.weight"] = {h};
    const std::string attn = layer + "self_attn.";
    if (arch.fused_qkv) {
      shapes[attn + "qkv_proj.weight"] = {q_out + 2 * kv_out, h};
      if (arch.qkv_bias) shapes[attn + "qkv_proj.bias"] = {q_out + 2 * kv_out};
    } else {
      shapes[attn + "q_proj.weight"] = {q_out, h};
      shapes[attn + "k_proj.weight"] = {kv_out, h};
      shapes[attn + "v_proj.weight"] = {kv_out, h};
      if (arch.qkv_bias) {
        shapes[attn + "q_proj.bias"] = {q_out};
        shapes[attn + "k_proj.bias"] = {kv_out};
        shapes[attn + "v_proj.bias"] = {kv_out};
      }
    }
    shapes[attn + "o_proj.weight"] = {h, q_out};
    if (arch.o_bias) shapes[attn + "o_proj.bias"] = {h};
    const std::string mlp = layer + "mlp.";
    if (arch.fused_gate_up) {
      shapes[mlp + "gate_up_proj.weight"] = {2 * inter, h};
      if (arch.mlp_bias) shapes[mlp + "gate_up_proj.bias"] = {2 * inter};
    } else {
      shapes[mlp + "gate_proj.weight"] = {inter, h};
      shapes[mlp + "up_proj.weight"] = {inter, h};
      if (arch.mlp_bias) {
        shapes[mlp + "gate_proj.bias"] = {inter};
        shapes[mlp + "up_proj.bias"] = {inter};
      }
    }
    shapes[mlp + "down_proj.weight"] = {h, inter};
    if (arch.mlp_bias) shapes[mlp + "down_proj.bias"] = {h};
  }
  return shapes;
}

std::map<std::string, std::pair<int64_t, int64_t>> LoraTargetShapes(const ModelArchitecture& arch) {
  const int64_t h = arch.hidden_size;
  const int64_t q_out = arch.num_attention_heads * arch.head_dim;
  const int64_t kv_out = arch.num_key_value_heads * arch.head_dim;
  const int64_t inter = arch.intermediate_size;
  std::map<std::string, std::pair<int64_t, int64_t>> targets;
  if (arch.fused_qkv) {
    targets["qkv_proj"] = {h, q_out + 2 * kv_out};
  } else {
    targets["q_proj"] = {h, q_out};
    targets["k_proj"] = {h, kv_out};
    targets["v_proj"] = {h, kv_out};
  }
  targets["o_proj"] = {q_out, h};
  if (arch.fused_gate_up) {
    targets["gate_up_proj"] = {h, 2 * inter};
  } else {
    targets["gate_proj"] = {h, inter};
    targets["up_proj"] = {h, inter};
  }
  targets["down_proj"] = {inter, h};
  return targets;
}

}  // namespace tuneforge
