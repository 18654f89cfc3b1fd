// Validates a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors header) against the base
// model it is meant for, without loading any tensor data.
#ifndef TUNEFORGE_COMMON_PEFT_ADAPTER_H_
#define TUNEFORGE_COMMON_PEFT_ADAPTER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/local_model.h"
#include "common/model_config.h"
#include "common/safetensors_header.h"

namespace tuneforge {

struct PeftAdapterInfo {
  std::string peft_type;  // "LORA"
  int64_t rank = 0;       // r
  double alpha = 0;       // lora_alpha; scaling = alpha / r, or alpha / sqrt(r) with rsLoRA
  // Module names the adapter targets, resolved against the base ("all-linear" and regexes expanded),
  // sorted, e.g. {"k_proj", "q_proj", "v_proj"}.
  std::vector<std::string> target_modules;
  std::string target_modules_regex;  // target_modules as written when it was a string; empty for a list
  bool use_rslora = false;
  std::string base_model_name_or_path;
  std::string task_type;  // "CAUSAL_LM" or empty
};

// Checks adapter_config.json (LORA, CAUSAL_LM, r, lora_alpha, target_modules; features we cannot train
// or merge are rejected by key) and that `weights` holds exactly lora_A [r, in] and lora_B [out, r] under
// "base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight" for every targeted
// module of every layer of `base`. Errors are INVALID_ARGUMENT naming "adapter_config.json" or
// "adapter_model.safetensors" (prefixed by "<label>/" when `label` is not empty) and the tensor.
absl::StatusOr<PeftAdapterInfo> ValidatePeftAdapter(std::string_view adapter_config_json,
                                                    const SafetensorsHeader& weights, const ModelArchitecture& base,
                                                    std::string_view label);

struct LocalAdapterInfo {
  std::string directory;
  std::vector<LocalFile> files;  // sorted by path
  std::string fingerprint;       // DirectoryFingerprint(files)
  PeftAdapterInfo info;
};

// `directory` is already canonical and confined by the caller. Requires adapter_config.json and
// adapter_model.safetensors (NOT_FOUND otherwise), validated against `base`; other files are listed.
absl::StatusOr<LocalAdapterInfo> InspectLocalAdapterDirectory(const std::string& directory,
                                                              const ModelArchitecture& base);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_PEFT_ADAPTER_H_
