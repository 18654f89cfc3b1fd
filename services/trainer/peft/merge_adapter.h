// Exports of a trained PEFT LoRA adapter: merged into its base as a Hugging Face model directory, streamed one
// tensor at a time (a 7B base is never held whole), or the adapter directory itself, copied.
#ifndef TUNEFORGE_SERVICES_TRAINER_PEFT_MERGE_ADAPTER_H_
#define TUNEFORGE_SERVICES_TRAINER_PEFT_MERGE_ADAPTER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/peft_adapter.h"

namespace tuneforge {

// Files that travel with an export are the regular files at the top of the source directory, hidden ones excepted;
// subdirectories are skipped. A symlink is copied as the content it points to when that lies inside the directory
// or, for a Hugging Face cache snapshot (.../snapshots/<commit>/), in the repository's blobs/; any other symlink to
// a file is PERMISSION_DENIED naming it.

// adapter_config.json + adapter_model.safetensors of `adapter_dir` validated (ValidatePeftAdapter) against the
// config.json of the base model directory `base_dir`.
absl::StatusOr<PeftAdapterInfo> ReadAdapterForBase(const std::string& base_dir, const std::string& adapter_dir);

struct MergedModelOptions {
  // "fp32" | "bf16" | "fp16" (or "float32" | "bfloat16" | "float16"); empty: the base's (config.json "torch_dtype"
  // or "dtype", else the dtype holding most of its floating weights).
  std::string dtype;
  uint64_t max_shard_bytes = 5'000'000'000;  // tensor bytes per shard; transformers' "5GB"
};

struct MergeProgress {
  int64_t tensors_done = 0, tensors_total = 0;
  uint64_t bytes_written = 0;  // tensor bytes handed to the writer so far
};

struct MergedModelInfo {
  std::string dtype;             // written: "float32" | "bfloat16" | "float16"
  int shards = 0;                // 1: model.safetensors; more: model-0000i-of-0000n.safetensors + index
  uint64_t total_bytes = 0;      // tensor bytes of all shards
  int64_t merged_modules = 0;    // base weights that received W + scaling * B @ A
  PeftAdapterInfo adapter;       // r, alpha, targets as validated
  std::vector<std::string> files;    // written into out_dir, sorted
  std::vector<std::string> skipped;  // entries of base_dir not copied: subdirectories, non-regular files
};

// Writes into `out_dir` (created; refused with ALREADY_EXISTS when it exists and is not empty) the base model of
// `base_dir` with the adapter of `adapter_dir` merged as PEFT's merge_and_unload does: every targeted
// model.layers.{i}.{block}.{module}.weight becomes W + scaling * (B @ A), scaling = alpha / r (alpha / sqrt(r) with
// rsLoRA), computed in fp32 and then cast to the output dtype; other floating tensors are cast, integer ones kept.
// Tensor names and order are the base's. Also config.json (torch_dtype / dtype set to the output dtype),
// generation_config.json (copied, or made from config.json's token ids) and every other non-weight file of base_dir
// (tokenizer files, chat template, README, ...). Tensors are computed when the writer reaches them; `cancelled`
// (may be empty) is asked before each one (CANCELLED) and `on_progress` (may be empty) told after each. On any
// error, everything written into out_dir is removed again (and out_dir itself when this call created it).
absl::StatusOr<MergedModelInfo> WriteMergedModel(const std::string& base_dir, const std::string& adapter_dir,
                                                 const std::string& out_dir, const MergedModelOptions& options,
                                                 const std::function<void(const MergeProgress&)>& on_progress,
                                                 const std::function<bool()>& cancelled);

struct CopiedAdapterInfo {
  std::vector<std::string> files;  // copied into out_dir, sorted
  uint64_t bytes = 0;
  std::vector<std::string> skipped;  // subdirectories and non-regular entries of adapter_dir, not copied
};

// Copies the PEFT adapter directory `adapter_dir` into `out_dir` (same rules for out_dir and for cleaning up after
// an error as WriteMergedModel) after checking that adapter_config.json is a JSON object and
// adapter_model.safetensors a readable safetensors file (NOT_FOUND / INVALID_ARGUMENT naming the file).
absl::StatusOr<CopiedAdapterInfo> CopyPeftAdapter(const std::string& adapter_dir, const std::string& out_dir);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_PEFT_MERGE_ADAPTER_H_
