// config.json -> DecoderConfig. What differs between families is one row of kDecoderFamilies; the
// RoPE block (transformers 5 rope_parameters, or 4.x rope_theta + rope_scaling) is read the same way for every
// family.
#include "services/trainer/model/decoder_config.h"

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tuneforge {
namespace {

using Json = nlohmann::json;

struct DecoderFamilyRow {
  std::string_view family;
  double default_rms_norm_eps;
  double norm_weight_offset;
  bool scale_embeddings;
  const char* activation_key;         // the config key that names the MLP activation
  const char* default_activation;     // used when that key is absent or null
  const char* sliding_window_key;     // nullptr: the family never uses a window
  const char* sliding_window_enable;  // nullptr: always on when set; else this bool key must be true
};

// As transformers reads them (4.44 for the activation key of configs it wrote; 5.x reads hidden_act). Phi-3 and Qwen2
// attend to every key unless stated.
constexpr DecoderFamilyRow kDecoderFamilies[] = {
    {"llama", 1e-6, 0.0, false, "hidden_act", "silu", nullptr, nullptr},
    {"mistral", 1e-6, 0.0, false, "hidden_act", "silu", "sliding_window", nullptr},
    {"qwen2", 1e-6, 0.0, false, "hidden_act", "silu", nullptr, nullptr},  // 4.44 eager ignores the window
    {"phi3", 1e-5, 0.0, false, "hidden_act", "silu", nullptr, nullptr},
    {"gemma", 1e-6, 1.0, true, "hidden_activation", "gelu_pytorch_tanh", nullptr, nullptr},
};

absl::Status Invalid(std::string_view label, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(label), ": ", what));
}

// config.json's transformers_version, when it names major version 5 or later.
bool WrittenByTransformers5(const Json& config) {
  auto v = config.find("transformers_version");
  if (v == config.end() || !v->is_string()) return false;
  const std::string version = v->get<std::string>();
  const size_t dot = version.find('.');
  int major = 0;
  return dot != std::string::npos && absl::SimpleAtoi(version.substr(0, dot), &major) && major >= 5;
}

absl::StatusOr<Activation> ParseActivation(const std::string& name, std::string_view label, const char* key) {
  if (name == "silu" || name == "swish") return Activation::kSilu;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new" || name == "gelu_fast") return Activation::kGeluTanh;
  if (name == "gelu") return Activation::kGeluErf;
  return Invalid(label, absl::StrCat(key, " '", name,
                                     "' is not an activation we support (silu, gelu_pytorch_tanh, gelu_new, gelu)"));
}

absl::StatusOr<double> NumberOr(const Json& obj, const char* key, double fallback, std::string_view label,
                                const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_number()) return Invalid(label, absl::StrCat(where, key, " must be a number"));
  return it->get<double>();
}

absl::StatusOr<std::vector<double>> Factors(const Json& scaling, const char* key, int64_t count,
                                            std::string_view label) {
  auto it = scaling.find(key);
  if (it == scaling.end() || !it->is_array() || static_cast<int64_t>(it->size()) != count) {
    return Invalid(label, absl::StrCat("rope ", key, " must be a list of ", count,
                                       " numbers (head_dim / 2) for longrope"));
  }
  std::vector<double> out;
  for (const Json& v : *it) {
    if (!v.is_number()) return Invalid(label, absl::StrCat("rope ", key, " must hold numbers"));
    out.push_back(v.get<double>());
  }
  return out;
}

// The RoPE block: transformers 5 writes `rope_parameters` (rope_theta, rope_type and the scaling keys in one
// object); 4.x wrote top-level `rope_theta` and a `rope_scaling` object. Both are read the same way.
absl::Status ParseRope(const Json& config, DecoderConfig& out, std::string_view label) {
  RopeSettings& rope = out.rope;
  rope.rotary_dim = out.arch.head_dim;
  rope.max_position_embeddings = out.arch.max_position_embeddings;
  const Json empty = Json::object();
  const Json* block = &empty;
  std::string where = "rope_scaling.";
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) continue;
    if (!it->is_object()) return Invalid(label, absl::StrCat(key, " must be an object or null"));
    block = &*it;
    where = absl::StrCat(key, ".");
    break;
  }
  ASSIGN_OR_RETURN(double top_theta, NumberOr(config, "rope_theta", 10000.0, label, ""));
  ASSIGN_OR_RETURN(rope.theta, NumberOr(*block, "rope_theta", top_theta, label, where));
  if (rope.theta <= 0) return Invalid(label, "rope_theta must be positive");
  for (const Json* source : {&config, block}) {
    auto p = source->find("partial_rotary_factor");
    if (p != source->end() && !p->is_null() && *p != 1.0) {
      return Invalid(label, "partial_rotary_factor other than 1.0 is not supported for this family");
    }
  }
  std::string type;
  for (const char* key : {"rope_type", "type"}) {
    if (block->contains(key) && (*block)[key].is_string()) {
      type = (*block)[key].get<std::string>();
      break;
    }
  }
  if (type.empty() || type == "default") return absl::OkStatus();
  if (type == "linear") {
    rope.kind = RopeKind::kLinear;
    ASSIGN_OR_RETURN(rope.factor, NumberOr(*block, "factor", 0.0, label, where));
    if (rope.factor <= 0) return Invalid(label, absl::StrCat(where, "factor must be a positive number for linear rope"));
    return absl::OkStatus();
  }
  if (type == "llama3") {
    rope.kind = RopeKind::kLlama3;
    ASSIGN_OR_RETURN(rope.factor, NumberOr(*block, "factor", 0.0, label, where));
    ASSIGN_OR_RETURN(rope.low_freq_factor, NumberOr(*block, "low_freq_factor", 0.0, label, where));
    ASSIGN_OR_RETURN(rope.high_freq_factor, NumberOr(*block, "high_freq_factor", 0.0, label, where));
    ASSIGN_OR_RETURN(double orig, NumberOr(*block, "original_max_position_embeddings", 0.0, label, where));
    rope.original_max_position_embeddings = static_cast<int64_t>(orig);
    if (rope.factor <= 0 || rope.low_freq_factor <= 0 || rope.high_freq_factor <= rope.low_freq_factor || orig <= 0) {
      return Invalid(label, absl::StrCat(where,
                                         " for llama3 needs factor > 0, 0 < low_freq_factor < high_freq_factor and "
                                         "original_max_position_embeddings > 0"));
    }
    return absl::OkStatus();
  }
  if (type == "longrope" || type == "su") {
    rope.kind = RopeKind::kLongRope;
    ASSIGN_OR_RETURN(double top_orig, NumberOr(config, "original_max_position_embeddings", 0.0, label, ""));
    ASSIGN_OR_RETURN(double orig, NumberOr(*block, "original_max_position_embeddings", top_orig, label, where));
    if (orig <= 0) return Invalid(label, "original_max_position_embeddings must be set (> 0) for longrope");
    rope.original_max_position_embeddings = static_cast<int64_t>(orig);
    ASSIGN_OR_RETURN(rope.short_factor, Factors(*block, "short_factor", rope.rotary_dim / 2, label));
    ASSIGN_OR_RETURN(rope.long_factor, Factors(*block, "long_factor", rope.rotary_dim / 2, label));
    return absl::OkStatus();
  }
  return Invalid(label, absl::StrCat(where, "rope_type '", type,
                                     "' is not supported (default, linear, llama3, longrope)"));
}

}  // namespace

absl::StatusOr<DecoderConfig> ParseDecoderConfig(std::string_view config_json, std::string_view generation_config_json,
                                                 std::string_view label) {
  DecoderConfig out;
  ASSIGN_OR_RETURN(out.arch, ParseModelConfig(config_json, generation_config_json, label));
  const DecoderFamilyRow* row = nullptr;
  for (const DecoderFamilyRow& r : kDecoderFamilies) {
    if (r.family == out.arch.family) row = &r;
  }
  if (row == nullptr) return Invalid(label, absl::StrCat("family '", out.arch.family, "' has no decoder row"));
  try {
    const Json config = Json::parse(config_json);
    out.norm_weight_offset = row->norm_weight_offset;
    out.scale_embeddings = row->scale_embeddings;
    ASSIGN_OR_RETURN(out.rms_norm_eps, NumberOr(config, "rms_norm_eps", row->default_rms_norm_eps, label, ""));
    // transformers 5 reads every family's activation from hidden_act (Gemma's hidden_activation is gone); the
    // row's key is how the 4.x that wrote older configs read it.
    const char* activation_key = WrittenByTransformers5(config) ? "hidden_act" : row->activation_key;
    std::string activation = row->default_activation;
    auto act = config.find(activation_key);
    if (act != config.end() && !act->is_null()) {
      if (!act->is_string()) return Invalid(label, absl::StrCat(activation_key, " must be a string"));
      activation = act->get<std::string>();
    }
    ASSIGN_OR_RETURN(out.activation, ParseActivation(activation, label, activation_key));
    if (row->sliding_window_key != nullptr) {
      bool enabled = true;
      if (row->sliding_window_enable != nullptr) {
        auto en = config.find(row->sliding_window_enable);
        enabled = en != config.end() && en->is_boolean() && en->get<bool>();
      }
      auto sw = config.find(row->sliding_window_key);
      if (enabled && sw != config.end() && !sw->is_null()) {
        if (!sw->is_number_integer() || sw->get<int64_t>() <= 0) {
          return Invalid(label, absl::StrCat(row->sliding_window_key, " must be a positive integer or null"));
        }
        out.sliding_window = sw->get<int64_t>();
      }
    }
    RETURN_IF_ERROR(ParseRope(config, out, label));
  } catch (const Json::exception& e) {
    return Invalid(label, absl::StrCat("cannot be read: ", e.what()));
  }
  return out;
}

}  // namespace tuneforge
