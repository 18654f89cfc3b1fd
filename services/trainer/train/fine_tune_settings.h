// The settings of a LoRA fine-tune as a job gives them (its "lora" and "training" config sections): validation,
// Hugging Face's defaults, and the model's LoRA targets. Free of libtorch headers.
#ifndef TUNEFORGE_SERVICES_TRAINER_TRAIN_FINE_TUNE_SETTINGS_H_
#define TUNEFORGE_SERVICES_TRAINER_TRAIN_FINE_TUNE_SETTINGS_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"

namespace tuneforge {

// The settings a run actually applies, after defaults (the job's "hyperparameters actually applied").
struct FineTuneSettings {
  // lora
  int64_t lora_r = 8;
  double lora_alpha = 8;
  double lora_dropout = 0.0;
  std::vector<std::string> target_modules;  // resolved names; PEFT's per-family default when absent
  bool use_rslora = false;
  // training
  int64_t num_epochs = 3;  // whole epochs (transformers' num_train_epochs, without fractions)
  int64_t max_steps = -1;  // optimizer steps; > 0 overrides num_epochs
  double learning_rate = 5e-5;
  std::string lr_scheduler = "linear";  // constant | linear | cosine
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;
  int64_t per_device_batch_size = 8;  // rows per micro-batch (examples, or packed rows of max_seq_len)
  int64_t gradient_accumulation_steps = 1;
  int64_t max_seq_len = 2048;  // tokens per example (per packed row with packing)
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;  // 0 turns clipping off
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  // adamw: torch.optim.AdamW's update with torch's fused kernel; adamw_8bit: the same update with 8-bit moments
  // (a code a byte and a scale per 256 entries), 4x less optimizer memory.
  std::string optimizer = "adamw";
  int64_t seed = 42;
  std::string dtype = "fp32";   // fp32 | bf16 | fp16
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  bool train_on_input = false;
  bool packing = false;
  // Without packing, each micro-batch's examples end to end in one row instead of padded rows, where the model
  // attends sequence by sequence (sdpa, no sliding window shorter than max_seq_len): exact, the same steps, less work.
  bool padding_free = true;
  bool gradient_checkpointing = false;  // recompute each decoder layer in backward instead of keeping activations
  // With gradient_checkpointing: the checkpointed layer inputs wait in host memory between forward and backward.
  bool activation_offload = false;
  // The loss from the final hidden states a chunk of rows at a time (ChunkedCausalLmLoss): fp32 logits for all
  // tokens never exist at once. false: the whole [B,T,V] logits, as transformers computes them.
  bool chunked_loss = true;
  std::string attn_implementation = "sdpa";  // sdpa (fused kernels) | eager (transformers' op-for-op attention)
  int64_t save_steps = 0;               // 0: checkpoints only at epoch ends and at the last step
  bool eval_every_epoch = true;         // false: the test split is evaluated once, after the last step
  int64_t logging_steps = 500;
  bool full_finetune = false;  // not implemented yet: RunFineTune answers UNIMPLEMENTED

  nlohmann::json ToJson() const;  // {"lora": {...}, "training": {...}} with every key above
};

// Validates and fills in defaults. INVALID_ARGUMENT names the key ("training.per_device_batch_size must be an
// integer >= 1, got 0"). Keys it does not know are appended to `ignored_keys` (e.g. "training.foo") when given.
// target_modules are resolved by RunFineTune, which knows the model family.
absl::StatusOr<FineTuneSettings> ParseFineTuneSettings(const nlohmann::json& lora, const nlohmann::json& training,
                                                       std::vector<std::string>* ignored_keys = nullptr);

// PEFT's names for the model's linear layers: "all-linear" expanded, PEFT's per-family default (q_proj and v_proj,
// phi3's fused qkv_proj) when none are given, every name checked. Sorted, as PEFT stores them as a set.
absl::StatusOr<std::vector<std::string>> ResolveTargetModules(const std::vector<std::string>& requested,
                                                              const ModelArchitecture& arch);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TRAIN_FINE_TUNE_SETTINGS_H_
