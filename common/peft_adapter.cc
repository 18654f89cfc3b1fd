// PEFT LoRA adapter validation: adapter_config.json fields, target module resolution as PEFT does it,
// and the names and shapes of every lora_A / lora_B tensor.
#include "common/peft_adapter.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/json_limits.h"
#include "common/status_macros.h"

namespace tuneforge {
namespace {

using Json = nlohmann::json;

// Our abseil's string_view is its own type, not std::string_view; StrCat needs it.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

constexpr char kAdapterConfig[] = "adapter_config.json";
constexpr char kAdapterWeights[] = "adapter_model.safetensors";
constexpr char kKeyPrefix[] = "base_model.model.model.layers.";
constexpr int64_t kPeftDefaultRank = 8;  // LoraConfig.r
constexpr double kPeftDefaultAlpha = 8;  // LoraConfig.lora_alpha
constexpr uint64_t kMaxRank = 1 << 20;

// A (layer, module) pair PEFT wraps with LoRA.
using Target = std::pair<int64_t, std::string>;

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string FileLabel(absl::string_view label, absl::string_view file) {
  return label.empty() ? std::string(file) : absl::StrCat(label, "/", file);
}

std::string ModuleKey(int64_t layer, absl::string_view module) {
  return absl::StrCat("model.layers.", layer, ".", Av(LoraTargetBlock(Sv(module))), ".", module);
}

std::string TensorName(int64_t layer, absl::string_view module, absl::string_view ab) {
  return absl::StrCat("base_model.model.", ModuleKey(layer, module), ".lora_", ab, ".weight");
}

std::string ModuleList(const ModelArchitecture& base) {
  std::vector<std::string> names;
  for (const auto& [name, unused] : LoraTargetShapes(base)) names.push_back(name);
  return absl::StrJoin(names, ", ");
}

std::string BaseDescription(const ModelArchitecture& base) {
  return absl::StrCat(base.family, " base model (", base.num_hidden_layers, " layers, hidden_size ", base.hidden_size,
                      ")");
}

// nullptr when absent or null.
const Json* Field(const Json& obj, absl::string_view key) {
  auto it = obj.find(Sv(key));
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// A feature we cannot train, merge or serve: an error when `key` holds anything but its neutral value.
absl::Status RejectUnsupported(const Json& config, absl::string_view key, absl::string_view why,
                               absl::string_view label) {
  const Json* v = Field(config, key);
  if (v == nullptr) return absl::OkStatus();
  const bool neutral = (v->is_boolean() && !v->get<bool>()) || ((v->is_object() || v->is_array()) && v->empty()) ||
                       (v->is_string() && v->get<std::string>().empty());
  if (neutral) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(label, ": ", key, " = ", v->dump(), " is not supported (", why, "); remove it and re-train"));
}

struct TargetSpec {
  std::vector<std::string> names;  // list form
  std::string regex;               // string form ("all-linear" or a regex)
  bool is_string = false;
};

// Which (layer, module) pairs PEFT would wrap: a string is fullmatched against each module key, a list
// entry matches a key equal to it or ending in "." + entry.
absl::StatusOr<std::set<Target>> ResolveTargets(const TargetSpec& spec, const ModelArchitecture& base,
                                                absl::string_view label) {
  const auto shapes = LoraTargetShapes(base);
  std::set<Target> targets;
  if (spec.is_string) {
    if (spec.regex == "all-linear") {
      for (int64_t i = 0; i < base.num_hidden_layers; ++i) {
        for (const auto& [module, unused] : shapes) targets.emplace(i, module);
      }
      return targets;
    }
    try {
      const std::regex re(spec.regex, std::regex::ECMAScript);
      for (int64_t i = 0; i < base.num_hidden_layers; ++i) {
        for (const auto& [module, unused] : shapes) {
          if (std::regex_match(ModuleKey(i, module), re)) targets.emplace(i, module);
        }
      }
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(label, ": target_modules regex '", spec.regex,
                                                     "' cannot be used (", e.what(),
                                                     "); list the module names instead"));
    }
    if (targets.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(label, ": target_modules regex '", spec.regex,
                                                     "' matches no linear layer of the ", BaseDescription(base),
                                                     "; LoRA can target: ", ModuleList(base)));
    }
    return targets;
  }
  for (const std::string& entry : spec.names) {
    bool matched = false;
    for (int64_t i = 0; i < base.num_hidden_layers; ++i) {
      for (const auto& [module, unused] : shapes) {
        const std::string key = ModuleKey(i, module);
        if (key == entry || absl::EndsWith(key, absl::StrCat(".", entry))) {
          targets.emplace(i, module);
          matched = true;
        }
      }
    }
    if (!matched) {
      return absl::InvalidArgumentError(absl::StrCat(label, ": target_modules entry '", entry,
                                                     "' matches no linear layer of the ", BaseDescription(base),
                                                     "; LoRA can target: ", ModuleList(base)));
    }
  }
  return targets;
}

// Splits "base_model.model.model.layers.{i}.{block}.{module}.lora_{A|B}.weight".
bool ParseLoraTensorName(absl::string_view name, int64_t* layer, std::string* block, std::string* module,
                         std::string* ab) {
  if (!absl::StartsWith(name, kKeyPrefix)) return false;
  std::vector<absl::string_view> parts = absl::StrSplit(name.substr(sizeof(kKeyPrefix) - 1), '.');
  if (parts.size() != 5 || parts[4] != "weight" || (parts[3] != "lora_A" && parts[3] != "lora_B")) return false;
  const absl::string_view index = parts[0];
  if (index.empty() || index.size() > 9 || (index.size() > 1 && index[0] == '0') ||
      !std::all_of(index.begin(), index.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return false;
  }
  if (!absl::SimpleAtoi(index, layer)) return false;
  *block = std::string(parts[1]);
  *module = std::string(parts[2]);
  *ab = std::string(parts[3].substr(5));
  return true;
}

absl::StatusOr<TargetSpec> ParseTargetModules(const Json& config, absl::string_view label) {
  const Json* v = Field(config, "target_modules");
  TargetSpec spec;
  if (v == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": target_modules is missing; list the modules the ",
                                                   "adapter was trained on (e.g. [\"q_proj\", \"v_proj\"])"));
  }
  if (v->is_string()) {
    spec.is_string = true;
    spec.regex = v->get<std::string>();
    if (spec.regex.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(label, ": target_modules is an empty string"));
    }
    return spec;
  }
  if (!v->is_array() || v->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": target_modules must be a non-empty list of module names or a string, got ", v->dump()));
  }
  for (const Json& name : *v) {
    if (!name.is_string() || name.get<std::string>().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": target_modules entries must be module names, got ", name.dump()));
    }
    spec.names.push_back(name.get<std::string>());
  }
  return spec;
}

absl::StatusOr<PeftAdapterInfo> ParseAdapterConfig(const Json& config, absl::string_view label) {
  PeftAdapterInfo info;
  const Json* peft_type = Field(config, "peft_type");
  if (peft_type == nullptr || !peft_type->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": peft_type is missing or not a string; only PEFT LORA adapters are supported"));
  }
  info.peft_type = peft_type->get<std::string>();
  if (info.peft_type != "LORA") {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": peft_type '", info.peft_type, "' is not supported; only LORA adapters are"));
  }
  if (const Json* task = Field(config, "task_type")) {
    if (!task->is_string() || task->get<std::string>() != "CAUSAL_LM") {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": task_type ", task->dump(), " is not supported; only CAUSAL_LM adapters are"));
    }
    info.task_type = "CAUSAL_LM";
  }
  info.rank = kPeftDefaultRank;
  if (const Json* r = Field(config, "r")) {
    // nlohmann stores every non-negative integer as unsigned; negatives and floats fail here.
    if (!r->is_number_unsigned() || r->get<uint64_t>() == 0 || r->get<uint64_t>() > kMaxRank) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": r must be a positive integer rank (at most ", kMaxRank, "), got ", r->dump()));
    }
    info.rank = r->get<int64_t>();
  }
  info.alpha = kPeftDefaultAlpha;
  if (const Json* alpha = Field(config, "lora_alpha")) {
    if (!alpha->is_number() || !(alpha->get<double>() > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": lora_alpha must be a positive number, got ", alpha->dump()));
    }
    info.alpha = alpha->get<double>();
  }
  if (const Json* rslora = Field(config, "use_rslora")) {
    if (!rslora->is_boolean()) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": use_rslora must be true or false, got ", rslora->dump()));
    }
    info.use_rslora = rslora->get<bool>();
  }
  if (const Json* base = Field(config, "base_model_name_or_path")) {
    if (!base->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": base_model_name_or_path must be a string, got ", base->dump()));
    }
    info.base_model_name_or_path = base->get<std::string>();
  }
  if (const Json* bias = Field(config, "bias")) {
    if (!bias->is_string() || bias->get<std::string>() != "none") {
      return absl::InvalidArgumentError(absl::StrCat(label, ": bias = ", bias->dump(),
                                                     " is not supported (it trains base-model biases); only \"none\" "
                                                     "is; re-train without it"));
    }
  }
  RETURN_IF_ERROR(RejectUnsupported(config, "rank_pattern", "per-module ranks", label));
  RETURN_IF_ERROR(RejectUnsupported(config, "alpha_pattern", "per-module alphas", label));
  RETURN_IF_ERROR(RejectUnsupported(config, "modules_to_save", "fully trained extra modules", label));
  RETURN_IF_ERROR(RejectUnsupported(config, "use_dora", "DoRA", label));
  RETURN_IF_ERROR(RejectUnsupported(config, "layers_to_transform", "LoRA on a subset of layers", label));
  RETURN_IF_ERROR(RejectUnsupported(config, "layer_replication", "replicated layers", label));
  RETURN_IF_ERROR(RejectUnsupported(config, "exclude_modules", "excluded modules", label));
  RETURN_IF_ERROR(RejectUnsupported(config, "lora_bias", "LoRA biases", label));
  RETURN_IF_ERROR(RejectUnsupported(config, "target_parameters", "LoRA on parameters", label));
  return info;
}

}  // namespace

absl::StatusOr<PeftAdapterInfo> ValidatePeftAdapter(std::string_view adapter_config_json,
                                                    const SafetensorsHeader& weights, const ModelArchitecture& base,
                                                    std::string_view label_in) {
  const absl::string_view label = Av(label_in);
  const std::string config_label = FileLabel(label, kAdapterConfig);
  const std::string weights_label = FileLabel(label, kAdapterWeights);
  RETURN_IF_ERROR(CheckJsonDepth(adapter_config_json, kMaxJsonDepth, config_label));
  Json config;
  try {
    config = Json::parse(adapter_config_json.begin(), adapter_config_json.end());
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(config_label, ": is not valid JSON (", e.what(), "); fix or re-save the adapter"));
  }
  if (!config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(config_label, ": must be a JSON object, got ", config.type_name()));
  }
  ASSIGN_OR_RETURN(PeftAdapterInfo info, ParseAdapterConfig(config, config_label));
  ASSIGN_OR_RETURN(TargetSpec spec, ParseTargetModules(config, config_label));
  ASSIGN_OR_RETURN(std::set<Target> targets, ResolveTargets(spec, base, config_label));
  if (spec.is_string) info.target_modules_regex = spec.regex;
  std::set<std::string> modules;
  for (const Target& t : targets) modules.insert(t.second);
  info.target_modules.assign(modules.begin(), modules.end());
  // tuneforge puts LoRA on a module in every layer or in none (layers_to_transform is rejected above for the same
  // reason): a target_modules regex that picks some layers only would pass here and fail when the adapter is loaded.
  for (const std::string& module : info.target_modules) {
    std::vector<int64_t> missing;
    for (int64_t i = 0; i < base.num_hidden_layers; ++i) {
      if (targets.count(Target{i, module}) == 0) missing.push_back(i);
    }
    if (!missing.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          config_label, ": target_modules ", spec.is_string ? absl::StrCat("regex '", spec.regex, "' ") : "",
          "covers ", module, " in some layers but not in layer(s) ", absl::StrJoin(missing, ", "), " of the ",
          BaseDescription(base), "; LoRA on a subset of layers is not supported: target ", module,
          " in every layer"));
    }
  }

  const auto shapes = LoraTargetShapes(base);
  const std::string expected_form =
      "expected base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight";
  std::set<std::pair<Target, std::string>> present;
  for (const TensorInfo& t : weights.tensors) {
    int64_t layer = 0;
    std::string block, module, ab;
    if (!ParseLoraTensorName(t.name, &layer, &block, &module, &ab)) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_label, ": tensor '", t.name, "' is not a LoRA weight we support (", expected_form, ")"));
    }
    auto shape_it = shapes.find(module);
    if (shape_it == shapes.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          weights_label, ": tensor '", t.name, "' is for module '", module, "', which the ", BaseDescription(base),
          " does not have (it has ", ModuleList(base), "); this adapter was trained for a different base model"));
    }
    if (block != LoraTargetBlock(module)) {
      return absl::InvalidArgumentError(absl::StrCat(weights_label, ": tensor '", t.name, "' puts ", module, " under '",
                                                     block, "' instead of '", Av(LoraTargetBlock(module)), "' (",
                                                     expected_form, ")"));
    }
    if (layer >= base.num_hidden_layers) {
      return absl::InvalidArgumentError(absl::StrCat(weights_label, ": tensor '", t.name, "' is for layer ", layer,
                                                     " but the ", BaseDescription(base),
                                                     " has no such layer; this adapter was trained for a different "
                                                     "base model"));
    }
    if (targets.count(Target{layer, module}) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(weights_label, ": tensor '", t.name, "' is for module ", module,
                                                     " of layer ", layer, ", which ", config_label,
                                                     " target_modules does not cover; the config and the weights "
                                                     "do not belong together"));
    }
    const auto [in_features, out_features] = shape_it->second;
    const std::vector<int64_t> expected =
        ab == "A" ? std::vector<int64_t>{info.rank, in_features} : std::vector<int64_t>{out_features, info.rank};
    if (t.shape != expected) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_label, ": tensor '", t.name, "' has shape ", ShapeString(t.shape),
                       " but r = ", info.rank, " and the ", BaseDescription(base), " need ", ShapeString(expected),
                       ab == "A" ? " (lora_A is [r, in_features])" : " (lora_B is [out_features, r])",
                       "; this adapter was trained for a different base model or its r is wrong"));
    }
    if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16" && t.dtype != "F64") {
      return absl::InvalidArgumentError(absl::StrCat(weights_label, ": tensor '", t.name, "' has dtype ", t.dtype,
                                                     "; LoRA weights must be F32, F16, BF16 or F64"));
    }
    present.emplace(Target{layer, module}, ab);
  }
  for (const Target& target : targets) {
    for (const char* ab : {"A", "B"}) {
      if (present.count({target, ab}) != 0) continue;
      const auto [in_features, out_features] = shapes.at(target.second);
      const std::vector<int64_t> expected = std::string_view(ab) == "A" ? std::vector<int64_t>{info.rank, in_features}
                                                                        : std::vector<int64_t>{out_features, info.rank};
      return absl::InvalidArgumentError(
          absl::StrCat(weights_label, ": tensor '", TensorName(target.first, target.second, ab), "' ",
                       ShapeString(expected), " is missing but ", config_label, " targets ", target.second,
                       " in every layer it covers; re-save ", "the adapter with PEFT"));
    }
  }
  return info;
}

absl::StatusOr<LocalAdapterInfo> InspectLocalAdapterDirectory(const std::string& directory,
                                                              const ModelArchitecture& base) {
  LocalAdapterInfo adapter;
  adapter.directory = directory;
  ASSIGN_OR_RETURN(adapter.files, ListDirectoryFiles(directory));
  auto listed = [&](std::string_view path) {
    return std::any_of(adapter.files.begin(), adapter.files.end(), [&](const LocalFile& f) { return f.path == path; });
  };
  if (!listed(kAdapterConfig)) {
    return absl::NotFoundError(
        absl::StrCat("adapter_config.json is not in '", directory, "'; a PEFT adapter directory needs it"));
  }
  if (!listed(kAdapterWeights)) {
    return absl::NotFoundError(absl::StrCat(
        "adapter_model.safetensors is not in '", directory, "'",
        listed("adapter_model.bin") ? "; tuneforge reads safetensors only: re-save with safe_serialization=True"
                                    : "; a PEFT adapter directory needs it"));
  }
  ASSIGN_OR_RETURN(std::string config_json, ReadDirectoryTextFile(directory, adapter.files, kAdapterConfig));
  ASSIGN_OR_RETURN(
      SafetensorsHeader weights,
      ReadSafetensorsHeader((std::filesystem::path(directory) / kAdapterWeights).string(), kAdapterWeights));
  ASSIGN_OR_RETURN(adapter.info, ValidatePeftAdapter(config_json, weights, base, ""));
  RETURN_IF_ERROR(HashDirectoryFiles(directory, adapter.files));
  adapter.fingerprint = DirectoryFingerprint(adapter.files);
  return adapter;
}

}  // namespace tuneforge
