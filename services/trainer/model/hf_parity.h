// Checks the decoder, loss, LoRA, AdamW and merge against one case of the Hugging Face reference data
// (hf_reference/<case>: model, inputs.json, logits and LoRA files). Shared by the parity test and the
// `tuneforge-parity` tool.
#ifndef TUNEFORGE_SERVICES_TRAINER_MODEL_HF_PARITY_H_
#define TUNEFORGE_SERVICES_TRAINER_MODEL_HF_PARITY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tuneforge {

struct ParityCheck {
  std::string name;         // e.g. "logits/right_pad", "lora/grad/<peft name>"
  double max_abs_diff = 0;  // against the reference
  double tolerance = 0;     // absolute part of the acceptance (see `detail` for a relative part)
  bool pass = false;
  std::string detail;  // how it was compared, or what differs
};

// Runs every check of `case_dir`. Errors only when the case cannot be read or the model cannot be built;
// a numeric mismatch is a check with pass = false.
absl::StatusOr<std::vector<ParityCheck>> RunHfParityChecks(const std::string& case_dir);

// Our logits for inputs that another implementation also runs (bench/gpu_check.py compares them with transformers
// and PEFT on the same device).
struct LogitsRun {
  std::string model_dir;    // a Hugging Face model directory
  std::string adapter_dir;  // a PEFT LoRA adapter applied on top, or empty
  // Pairs of input and output files: each input is a safetensors file with input_ids [B,T] (int64) and optionally
  // attention_mask and position_ids [B,T]; its output gets `logits` [B,T,V] (fp32). The model is loaded once.
  std::vector<std::string> inputs_paths, output_paths;
  std::string device = "auto";
  std::string attention = "sdpa";  // sdpa | eager
  std::string dtype = "fp32";      // fp32 | bf16: the model's weights and activations
};
absl::Status WriteLogits(const LogitsRun& run);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_MODEL_HF_PARITY_H_
