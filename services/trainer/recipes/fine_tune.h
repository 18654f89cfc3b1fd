// The LoRA fine-tuning recipe: a local Hugging Face model directory, dataset rows, a prompt and the job's lora /
// training settings in, a PEFT adapter out, with progress callbacks, checkpoints and exact resume. Free of gRPC
// and of libtorch headers, so the worker that calls it stays cheap to compile.
#ifndef TUNEFORGE_SERVICES_TRAINER_RECIPES_FINE_TUNE_H_
#define TUNEFORGE_SERVICES_TRAINER_RECIPES_FINE_TUNE_H_

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/trainer/data/examples.h"
#include "services/trainer/train/fine_tune_settings.h"

namespace tuneforge {

struct FineTuneSpec {
  // config.json, model.safetensors (or an index and shards), tokenizer.json and tokenizer_config.json.
  std::string model_dir;
  std::string base_model_name;                        // written as adapter_config.json's base_model_name_or_path
  std::vector<nlohmann::json> train_rows, test_rows;  // dataset rows (objects of columns); test may be empty
  // Optional names of those rows for errors, e.g. "train.jsonl row 11" (default "train row <n>").
  std::vector<std::string> train_row_labels, test_row_labels;
  PromptFormat prompt;
  // The job's configs. Missing keys take Hugging Face's defaults (PEFT LoraConfig, transformers
  // TrainingArguments) except where FineTuneSettings says otherwise; unknown keys are reported as warnings.
  nlohmann::json lora, training;
  std::string output_dir;      // the final adapter; replaced as a whole, never left half-written
  std::string checkpoint_dir;  // checkpoint-<step>/ directories; a complete one here is resumed from
  int threads = 0;             // torch intra-op threads; 0 leaves the process setting alone
};

struct FineTuneProgress {
  int64_t step = 0, total_steps = 0;  // optimizer steps
  int epoch = 0, num_epochs = 0;      // epoch is 1-based
  int64_t tokens = 0;                 // non-padding tokens trained on so far (all epochs, resumed ones included)
  double loss = 0;                    // mean step loss over the steps since the previous report
  double learning_rate = 0;           // of the last step
  double grad_norm = 0;               // of the last step, before clipping
  double tokens_per_second = 0;       // over the steps since the previous report
  std::optional<double> eval_loss;    // set on the report that ends an evaluated epoch
  double step_seconds = 0;            // mean wall time of the steps since the previous report (eval included)
  int64_t report_steps = 0;           // how many steps that mean covers
  // Peak bytes held by libtorch's allocator on the GPU since training began (torch.cuda.max_memory_allocated); on
  // the CPU the trainer process's resident high-water mark since training began.
  std::optional<int64_t> peak_device_memory_bytes;
  // Model FLOPs per second of the steps since the previous report (TrainingFlops; evaluation time counts) over the
  // device's measured matmul peak in the run's dtype (PeakMatmulFlops).
  double mfu = 0;
};

struct CheckpointInfo {
  int64_t step = 0;
  int epoch = 0;  // 1-based epoch of the step
  std::string path;
  double loss = 0;  // of the step
};

struct FineTuneHooks {
  // Every logging_steps steps, at every epoch end and at the last step (one report per step at most).
  std::function<void(const FineTuneProgress&)> on_progress;
  // level "info" or "warning": device and threads, parameter counts, tokenization summary (examples, truncated,
  // skipped rows), schedule, eval loss, checkpoint saved, "resumed from checkpoint-N", ignored settings.
  std::function<void(std::string_view level, std::string_view message)> on_event;
  std::function<void(const CheckpointInfo&)> on_checkpoint;  // after the checkpoint is complete on disk
  std::function<bool()> cancelled;                           // polled before every micro-batch and every eval batch
};

struct FineTuneResult {
  int64_t steps = 0;
  std::vector<double> step_losses;  // every optimizer step, those before a resume included
  std::vector<double> eval_losses;  // one per evaluation (token-weighted mean over the test split)
  std::string adapter_dir;          // = spec.output_dir
  int64_t train_tokens = 0;         // non-padding tokens trained on
  nlohmann::json settings;          // FineTuneSettings::ToJson of what was applied
};

// Runs the recipe: settings -> device -> tokenizer -> examples -> model with LoRA -> (resume) -> train with
// gradient accumulation, clipping, schedule and AdamW -> eval per epoch -> checkpoints -> final adapter.
// Same inputs and seed give identical step losses; a run resumed from a checkpoint continues exactly as the
// uninterrupted run would have. Errors: INVALID_ARGUMENT for a bad setting (named) or dataset row (named by
// ExampleBuilder); FAILED_PRECONDITION for no trainable example, fp16 on CPU, an unusable device or a checkpoint
// of a different run; UNIMPLEMENTED for full_finetune; CANCELLED when `cancelled` says so (checkpoints are kept).
// Dropout draws from libtorch's default generator, reseeded from (seed, step) every step: run one fine-tune per
// process at a time. Checkpoints hold the adapter files, optimizer.safetensors and trainer_state.json (written
// last); the last two are kept.
absl::StatusOr<FineTuneResult> RunFineTune(const FineTuneSpec& spec, const FineTuneHooks& hooks);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_RECIPES_FINE_TUNE_H_
