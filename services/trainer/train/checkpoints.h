// Checkpoints of a LoRA fine-tune and the files around them: checkpoint-<step>/ directories (the adapter,
// optimizer.safetensors, trainer_state.json written last), what must match for a resume, and directories that are
// replaced whole, so a killed run never leaves half a checkpoint or half an adapter.
#ifndef TUNEFORGE_SERVICES_TRAINER_TRAIN_CHECKPOINTS_H_
#define TUNEFORGE_SERVICES_TRAINER_TRAIN_CHECKPOINTS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "services/trainer/data/examples.h"
#include "services/trainer/model/causal_lm.h"
#include "services/trainer/train/adamw.h"
#include "services/trainer/train/fine_tune_settings.h"

namespace tuneforge {

// How many complete checkpoints a run keeps (the newest).
inline constexpr size_t kCheckpointsKept = 2;

// Where a run is: kept in trainer_state.json.
struct TrainerState {
  int64_t step = 0;        // optimizer steps done
  int64_t next_epoch = 0;  // 0-based epoch of the next micro-batch
  int64_t next_batch = 0;  // its index within that epoch's micro-batches
  int64_t last_epoch = 0;  // 1-based epoch of the last step (0 before any)
  int64_t train_tokens = 0;
  std::vector<double> step_losses;
  std::vector<double> eval_losses;
};

nlohmann::json TrainerStateJson(const TrainerState& st, int64_t total_steps, const std::string& fingerprint);

// What a checkpoint must agree on to be resumed: every setting that changes the numbers, the model's config.json
// and the training tokens. (The weights are not hashed: that would read the whole model again.)
std::string RunFingerprint(const FineTuneSettings& s, const ExampleSet& train, const std::string& config_json);

std::string CheckpointName(int64_t step);  // "checkpoint-<step>"
// Steps of the complete checkpoints under `dir` (named checkpoint-<step>, holding trainer_state.json), ascending.
std::vector<int64_t> ListCheckpoints(const std::string& dir);
// Removes what a killed run may have left half-written: ".checkpoint-<step>.tmp" directories.
void RemoveStaleTemporaries(const std::string& dir);

// The model's LoRA tensors and the optimizer's state as they were at a checkpoint, read and checked before any of
// it is applied, so an unusable checkpoint changes nothing.
struct LoadedCheckpoint {
  TrainerState state;
  std::map<std::string, at::Tensor> lora;
  std::vector<AdamWParamState> optimizer;
};

// FAILED_PRECONDITION when the checkpoint belongs to a run with another fingerprint or step count; other errors
// when it cannot be read (an older checkpoint may still serve).
absl::StatusOr<LoadedCheckpoint> ReadCheckpoint(const std::filesystem::path& dir, int64_t step,
                                                const std::vector<std::pair<std::string, at::Tensor>>& params,
                                                const std::string& fingerprint, int64_t total_steps);

// Writes checkpoint `dir` whole (through a temporary directory): the adapter, the optimizer state, then
// trainer_state.json.
absl::Status WriteCheckpoint(const std::filesystem::path& dir, const CausalLM& model, const AdamWOptimizer& optimizer,
                             const std::vector<std::pair<std::string, at::Tensor>>& params,
                             const std::string& base_model, const nlohmann::json& state_json);

// The final PEFT adapter: written beside `output_dir` and swapped in, so `output_dir` is complete or absent.
absl::Status WriteFinalAdapter(const CausalLM& model, const std::string& base_model, const std::string& output_dir);

absl::Status MakeDirectories(const std::filesystem::path& dir, std::string_view what);
// The whole file; NOT_FOUND naming it.
absl::StatusOr<std::string> ReadText(const std::string& path);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TRAIN_CHECKPOINTS_H_
