// PEFT LoRA adapters on disk <-> the LoRA tensors of a CausalLM: options from adapter_config.json,
// loading lora_A/lora_B into a built model, saving in PEFT's layout.
#ifndef TUNEFORGE_SERVICES_TRAINER_PEFT_LORA_ADAPTER_H_
#define TUNEFORGE_SERVICES_TRAINER_PEFT_LORA_ADAPTER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "services/trainer/model/causal_lm.h"

namespace tuneforge {

// adapter_config.json + adapter_model.safetensors header of `adapter_dir`, validated against `base`
// (ValidatePeftAdapter), as the LoraOptions to build the model with (dropout as configured).
absl::StatusOr<LoraOptions> ReadLoraOptions(const std::string& adapter_dir, const ModelArchitecture& base);

// Copies every lora_A / lora_B tensor of adapter_model.safetensors into `model`, which must have been
// built with the same rank and targets. INVALID_ARGUMENT names any tensor that is missing, unexpected
// or of the wrong shape.
absl::Status LoadLoraWeights(const std::string& adapter_dir, CausalLM& model);

// Writes adapter_config.json and adapter_model.safetensors (fp32, base_model.model.* keys) to `dir`.
absl::Status SavePeftAdapter(const CausalLM& model, const std::string& base_model_name_or_path, const std::string& dir);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_PEFT_LORA_ADAPTER_H_
