// The export job's recipe: a trained PEFT adapter either merged into its base model as a Hugging Face model
// directory or copied as an adapter directory, with what it does reported as events and progress.
#ifndef TUNEFORGE_SERVICES_TRAINER_RECIPES_EXPORT_MODEL_H_
#define TUNEFORGE_SERVICES_TRAINER_RECIPES_EXPORT_MODEL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tuneforge {

struct ExportSpec {
  std::string type;            // "merged" | "adapter"
  std::string base_model_dir;  // local HF model directory (resolved/downloaded by the caller); adapter: optional,
                               // the adapter is then checked against it
  std::string adapter_dir;     // local PEFT adapter directory
  std::string output_dir;      // written from scratch: must not exist, or be empty
  std::string dtype;           // merged only: "fp32" | "bf16" | "fp16"; empty: the base's
  uint64_t max_shard_bytes = 5'000'000'000;  // merged only: tensor bytes per shard
};

struct ExportHooks {
  std::function<void(std::string_view level, std::string_view message)> on_event;  // "info" / "warning"
  std::function<void(int64_t done, int64_t total)> on_progress;                      // tensors (merged) or files
  std::function<bool()> cancelled;                                                   // true: stop with CANCELLED
};

struct ExportResult {
  std::string output_dir;
  std::string dtype;  // merged: "float32" | "bfloat16" | "float16"; adapter: empty
  int shards = 0;     // merged: safetensors files written
  uint64_t bytes = 0;  // merged: tensor bytes; adapter: bytes copied
  std::vector<std::string> files;  // in output_dir, sorted
};

// Validates the spec (INVALID_ARGUMENT naming the field), then merges (WriteMergedModel) or copies
// (CopyPeftAdapter). Any hook may be empty. On an error nothing is left in output_dir.
absl::StatusOr<ExportResult> RunExport(const ExportSpec& spec, const ExportHooks& hooks);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_RECIPES_EXPORT_MODEL_H_
