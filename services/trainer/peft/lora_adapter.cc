// PEFT adapter I/O for the model's LoRA projections.
#include "services/trainer/peft/lora_adapter.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/peft_adapter.h"
#include "common/safetensors_header.h"
#include "common/status_macros.h"
#include "services/trainer/model/tensor_file.h"

namespace tuneforge {
namespace {

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, " is missing; a PEFT adapter directory needs it"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<LoraOptions> ReadLoraOptions(const std::string& adapter_dir, const ModelArchitecture& base) {
  ASSIGN_OR_RETURN(std::string config_json, ReadText(adapter_dir + "/adapter_config.json"));
  ASSIGN_OR_RETURN(SafetensorsHeader header,
                   ReadSafetensorsHeader(adapter_dir + "/adapter_model.safetensors", "adapter_model.safetensors"));
  ASSIGN_OR_RETURN(PeftAdapterInfo info, ValidatePeftAdapter(config_json, header, base, ""));
  LoraOptions options;
  options.rank = info.rank;
  options.alpha = info.alpha;
  options.use_rslora = info.use_rslora;
  options.target_modules = info.target_modules;
  try {
    const auto json = nlohmann::json::parse(config_json);
    auto it = json.find("lora_dropout");
    if (it != json.end() && it->is_number()) options.dropout = it->get<double>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("adapter_config.json: cannot be read: ", e.what()));
  }
  return options;
}

absl::Status LoadLoraWeights(const std::string& adapter_dir, CausalLM& model) {
  ASSIGN_OR_RETURN(auto tensors,
                   ReadTensorFile(adapter_dir + "/adapter_model.safetensors", "adapter_model.safetensors"));
  std::set<std::string> used;
  at::NoGradGuard no_grad;
  for (const auto& [name, param] : model.LoraParameters()) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      return absl::InvalidArgumentError(absl::StrCat("adapter_model.safetensors: tensor '", name,
                                                     "' is missing; the adapter does not fit the LoRA settings"));
    }
    if (it->second.sizes() != param.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat("adapter_model.safetensors: tensor '", name, "' has shape [",
                                                     absl::StrJoin(it->second.sizes().vec(), ","), "], expected [",
                                                     absl::StrJoin(param.sizes().vec(), ","), "]"));
    }
    at::Tensor dst = param;
    dst.copy_(it->second);
    used.insert(name);
  }
  for (const auto& [name, t] : tensors) {
    if (used.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("adapter_model.safetensors: unexpected tensor '", name,
                                                     "'; the model was built without that LoRA target"));
    }
  }
  return absl::OkStatus();
}

absl::Status SavePeftAdapter(const CausalLM& model, const std::string& base_model_name_or_path,
                             const std::string& dir) {
  const LoraOptions& lora = model.lora_options();
  if (lora.rank <= 0) return absl::FailedPreconditionError("the model has no LoRA adapter to save");
  std::map<std::string, at::Tensor> tensors;
  // PEFT's target_modules are the short names of the adapted layers ("all-linear" written out), sorted.
  std::set<std::string> targets;
  for (const auto& [name, t] : model.LoraParameters()) {
    tensors.emplace(name, t.detach().to(at::kFloat));
    const std::string module = name.substr(0, name.rfind(".lora_"));
    targets.insert(module.substr(module.rfind('.') + 1));
  }
  RETURN_IF_ERROR(WriteTensorFile(dir + "/adapter_model.safetensors", tensors));
  nlohmann::ordered_json config = {
      {"base_model_name_or_path", base_model_name_or_path},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"lora_alpha", lora.alpha},
      {"lora_dropout", lora.dropout},
      {"peft_type", "LORA"},
      {"r", lora.rank},
      {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
      {"task_type", "CAUSAL_LM"},
      {"use_dora", false},
      {"use_rslora", lora.use_rslora},
  };
  std::ofstream out(dir + "/adapter_config.json", std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", dir, "/adapter_config.json"));
  out << config.dump(2) << "\n";
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("writing ", dir, "/adapter_config.json failed"));
  return absl::OkStatus();
}

}  // namespace tuneforge
