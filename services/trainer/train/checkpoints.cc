// Checkpoint directories, the trainer state, and directories replaced whole.
#include "services/trainer/train/checkpoints.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "services/trainer/model/tensor_file.h"
#include "services/trainer/peft/lora_adapter.h"

namespace tuneforge {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr char kCheckpointPrefix[] = "checkpoint-";
constexpr char kTrainerStateFile[] = "trainer_state.json";
constexpr char kOptimizerFile[] = "optimizer.safetensors";
constexpr char kTrainerStateFormat[] = "tuneforge.trainer_state";
constexpr int kTrainerStateVersion = 1;

}  // namespace

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, " is missing or unreadable"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

static absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    return absl::PermissionDeniedError(absl::StrCat("cannot write ", path, "; check the directory's permissions"));
  out << text;
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("writing ", path, " failed (disk full?)"));
  return absl::OkStatus();
}


std::string CheckpointName(int64_t step) { return absl::StrCat(kCheckpointPrefix, step); }

// Steps of the complete checkpoints under `dir` (named checkpoint-<step>, holding trainer_state.json), ascending.
std::vector<int64_t> ListCheckpoints(const std::string& dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return steps;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, kCheckpointPrefix)) continue;
    int64_t step = 0;
    const std::string digits = name.substr(sizeof(kCheckpointPrefix) - 1);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    if (!absl::SimpleAtoi(digits, &step)) continue;
    if (!fs::is_regular_file(entry.path() / kTrainerStateFile, ec)) continue;
    steps.push_back(step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

// Removes what a killed run may have left half-written: ".checkpoint-<step>.tmp" directories.
void RemoveStaleTemporaries(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, ".checkpoint-") && absl::EndsWith(name, ".tmp")) stale.push_back(entry.path());
  }
  for (const auto& p : stale) fs::remove_all(p, ec);
}

// Replaces `target` by the directory `tmp`, so `target` either is the old one, missing, or complete.
static absl::Status ReplaceDirectory(const fs::path& tmp, const fs::path& target) {
  std::error_code ec;
  fs::remove_all(target, ec);
  if (ec)
    return absl::PermissionDeniedError(absl::StrCat("cannot remove the old ", target.string(), ": ", ec.message()));
  fs::rename(tmp, target, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot rename ", tmp.string(), " to ", target.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status MakeDirectories(const fs::path& dir, std::string_view what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create the ", std::string(what), " directory ", dir.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

Json TrainerStateJson(const TrainerState& st, int64_t total_steps, const std::string& fingerprint) {
  Json j;
  j["format"] = kTrainerStateFormat;
  j["version"] = kTrainerStateVersion;
  j["global_step"] = st.step;
  j["total_steps"] = total_steps;
  j["epoch"] = st.last_epoch;
  j["next_epoch_index"] = st.next_epoch;
  j["next_micro_batch"] = st.next_batch;
  j["train_tokens"] = st.train_tokens;
  j["step_losses"] = st.step_losses;
  j["eval_losses"] = st.eval_losses;
  j["fingerprint"] = fingerprint;
  return j;
}

static absl::StatusOr<TrainerState> ParseTrainerState(const std::string& text, int64_t expected_step,
                                                      std::string* fingerprint, int64_t* total_steps) {
  TrainerState st;
  try {
    const Json j = Json::parse(text);
    if (j.value("format", "") != kTrainerStateFormat || j.value("version", 0) != kTrainerStateVersion) {
      return absl::InvalidArgumentError("trainer_state.json is not a tuneforge trainer state of version 1");
    }
    st.step = j.at("global_step").get<int64_t>();
    *total_steps = j.at("total_steps").get<int64_t>();
    st.last_epoch = j.at("epoch").get<int64_t>();
    st.next_epoch = j.at("next_epoch_index").get<int64_t>();
    st.next_batch = j.at("next_micro_batch").get<int64_t>();
    st.train_tokens = j.at("train_tokens").get<int64_t>();
    st.step_losses = j.at("step_losses").get<std::vector<double>>();
    st.eval_losses = j.at("eval_losses").get<std::vector<double>>();
    *fingerprint = j.at("fingerprint").get<std::string>();
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("trainer_state.json cannot be read: ", e.what()));
  }
  if (st.step != expected_step || static_cast<int64_t>(st.step_losses.size()) != st.step || st.next_epoch < 0 ||
      st.next_batch < 0) {
    return absl::InvalidArgumentError("trainer_state.json does not agree with its directory name or step losses");
  }
  return st;
}

// What a checkpoint must agree on to be resumed: every setting that changes the numbers, the model's config.json
// and the training tokens. (The weights are not hashed: that would read the whole model again.)
std::string RunFingerprint(const FineTuneSettings& s, const ExampleSet& train, const std::string& config_json) {
  Json j = s.ToJson();
  for (const char* volatile_key :
       {"device", "logging_steps", "save_steps", "eval_every_epoch", "gradient_checkpointing", "attn_implementation",
        "padding_free", "activation_offload"}) {
    j["training"].erase(volatile_key);
  }
  std::string material = j.dump();
  absl::StrAppend(&material, "|", config_json, "|", train.examples.size());
  for (const Example& ex : train.examples) {
    material.append(reinterpret_cast<const char*>(ex.input_ids.data()), ex.input_ids.size() * sizeof(int32_t));
    material.append(reinterpret_cast<const char*>(ex.labels.data()), ex.labels.size() * sizeof(int32_t));
  }
  return Sha256Hex(material);
}

absl::StatusOr<LoadedCheckpoint> ReadCheckpoint(const fs::path& dir, int64_t step,
                                                const std::vector<std::pair<std::string, at::Tensor>>& params,
                                                const std::string& fingerprint, int64_t total_steps) {
  LoadedCheckpoint out;
  ASSIGN_OR_RETURN(std::string text, ReadText((dir / kTrainerStateFile).string()));
  std::string saved_fingerprint;
  int64_t saved_total = 0;
  ASSIGN_OR_RETURN(out.state, ParseTrainerState(text, step, &saved_fingerprint, &saved_total));
  if (saved_fingerprint != fingerprint || saved_total != total_steps) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir.filename().string(),
        " was written by a run with other settings, another model or other data; resume only the same job, or "
        "give this run an empty checkpoint_dir"));
  }
  ASSIGN_OR_RETURN(out.lora, ReadTensorFile((dir / "adapter_model.safetensors").string(), "adapter_model.safetensors"));
  ASSIGN_OR_RETURN(auto optimizer, ReadTensorFile((dir / kOptimizerFile).string(), kOptimizerFile));
  if (out.lora.size() != params.size()) {
    return absl::InvalidArgumentError("adapter_model.safetensors does not hold the model's LoRA tensors");
  }
  for (const auto& [name, param] : params) {
    auto it = out.lora.find(name);
    if (it == out.lora.end() || it->second.sizes() != param.sizes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("adapter_model.safetensors: tensor ", name, " is missing or has the wrong shape"));
    }
    AdamWParamState s;
    auto step_it = optimizer.find(name + ".step");
    if (step_it == optimizer.end() || step_it->second.numel() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(kOptimizerFile, ": ", name, ".step is missing"));
    }
    s.step = step_it->second.to(at::kLong).item<int64_t>();
    if (s.step > 0) {
      auto avg = optimizer.find(name + ".exp_avg");
      auto sq = optimizer.find(name + ".exp_avg_sq");
      if (avg == optimizer.end() || sq == optimizer.end() || avg->second.sizes() != param.sizes() ||
          sq->second.sizes() != param.sizes()) {
        return absl::InvalidArgumentError(
            absl::StrCat(kOptimizerFile, ": the moments of ", name, " are missing or misshapen"));
      }
      s.exp_avg = avg->second;
      s.exp_avg_sq = sq->second;
    }
    out.optimizer.push_back(std::move(s));
  }
  return out;
}

absl::Status WriteCheckpoint(const fs::path& dir, const CausalLM& model, const AdamWOptimizer& optimizer,
                             const std::vector<std::pair<std::string, at::Tensor>>& params,
                             const std::string& base_model, const Json& state_json) {
  const fs::path tmp = dir.parent_path() / absl::StrCat(".", dir.filename().string(), ".tmp");
  std::error_code ec;
  fs::remove_all(tmp, ec);
  RETURN_IF_ERROR(MakeDirectories(tmp, "checkpoint"));
  RETURN_IF_ERROR(SavePeftAdapter(model, base_model, tmp.string()));
  const std::vector<AdamWParamState> state = optimizer.ExportState();
  std::map<std::string, at::Tensor> tensors;
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string& name = params[i].first;
    tensors[name + ".step"] = at::full({1}, state[i].step, at::kLong);
    if (state[i].step > 0) {
      // fp32 holds bf16/fp16 moments exactly, so a resumed run continues bit for bit.
      tensors[name + ".exp_avg"] = state[i].exp_avg.to(at::kFloat);
      tensors[name + ".exp_avg_sq"] = state[i].exp_avg_sq.to(at::kFloat);
    }
  }
  RETURN_IF_ERROR(WriteTensorFile((tmp / kOptimizerFile).string(), tensors));
  // Written last: its presence is what marks a checkpoint as complete.
  RETURN_IF_ERROR(WriteText((tmp / kTrainerStateFile).string(), state_json.dump(1) + "\n"));
  return ReplaceDirectory(tmp, dir);
}

absl::Status WriteFinalAdapter(const CausalLM& model, const std::string& base_model, const std::string& output_dir) {
  const fs::path output(output_dir);
  if (output.has_parent_path()) RETURN_IF_ERROR(MakeDirectories(output.parent_path(), "output"));
  const std::string tmp_prefix = absl::StrCat(".", output.filename().string(), ".tmp-");
  const fs::path tmp = output.parent_path() / absl::StrCat(tmp_prefix, getpid());
  std::error_code ec;
  if (fs::is_directory(tmp.parent_path(), ec)) {  // what a killed run left behind
    std::vector<fs::path> stale;
    for (const auto& entry : fs::directory_iterator(tmp.parent_path(), ec)) {
      if (absl::StartsWith(entry.path().filename().string(), tmp_prefix)) stale.push_back(entry.path());
    }
    for (const auto& p : stale) fs::remove_all(p, ec);
  }
  RETURN_IF_ERROR(MakeDirectories(tmp, "output"));
  RETURN_IF_ERROR(SavePeftAdapter(model, base_model, tmp.string()));
  return ReplaceDirectory(tmp, output);
}

}  // namespace tuneforge
