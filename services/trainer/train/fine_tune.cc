// The fine-tuning recipe, top to bottom: settings, device, tokenizer, examples, model with LoRA, resume, the
// training loop (accumulation, clipping, schedule, AdamW), evaluation, checkpoints and the final adapter.
#include "services/trainer/train/fine_tune.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model_config.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "services/trainer/data/batching.h"
#include "services/trainer/model/causal_lm.h"
#include "services/trainer/model/device.h"
#include "services/trainer/model/tensor_file.h"
#include "services/trainer/peft/lora_adapter.h"
#include "services/trainer/tokenizer/chat_template.h"
#include "services/trainer/tokenizer/tokenizer.h"
#include "services/trainer/train/adamw.h"
#include "services/trainer/train/causal_lm_loss.h"
#include "services/trainer/train/grad_clip.h"
#include "services/trainer/train/lr_schedule.h"

namespace tuneforge {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr char kCheckpointPrefix[] = "checkpoint-";
constexpr char kTrainerStateFile[] = "trainer_state.json";
constexpr char kOptimizerFile[] = "optimizer.safetensors";
constexpr char kTrainerStateFormat[] = "tuneforge.trainer_state";
constexpr int kTrainerStateVersion = 1;
constexpr size_t kCheckpointsKept = 2;

// ---------------------------------------------------------------------------------------------------------------
// Settings

// Reads one config section ("lora" or "training"), remembering which keys it looked at so that the rest can be
// reported as ignored. null counts as absent.
class SectionReader {
 public:
  SectionReader(const Json& section, std::string name) : section_(section), name_(std::move(name)) {}

  absl::Status CheckObject() const {
    if (section_.is_null() || section_.is_object()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(name_, " must be a JSON object of settings, got ", section_.dump().substr(0, 80)));
  }

  const Json* Find(const char* key) {
    seen_.insert(key);
    if (!section_.is_object()) return nullptr;
    auto it = section_.find(key);
    if (it == section_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  absl::Status Fail(const char* key, std::string_view requirement, const Json& got) const {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ".", key, " must be ", std::string(requirement), ", got ", got.dump().substr(0, 80)));
  }

  // Whole numbers, also when written as 3.0.
  template <typename Pred>
  absl::Status Int(const char* key, int64_t* out, std::string_view requirement, Pred ok) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    int64_t value = 0;
    if (v->is_number_integer()) {
      value = v->get<int64_t>();
    } else if (v->is_number_float() && std::isfinite(v->get<double>()) &&
               v->get<double>() == std::floor(v->get<double>()) && std::fabs(v->get<double>()) < 9e15) {
      value = static_cast<int64_t>(v->get<double>());
    } else {
      return Fail(key, requirement, *v);
    }
    if (!ok(value)) return Fail(key, requirement, *v);
    *out = value;
    return absl::OkStatus();
  }

  template <typename Pred>
  absl::Status Number(const char* key, double* out, std::string_view requirement, Pred ok) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number() || !std::isfinite(v->get<double>()) || !ok(v->get<double>())) {
      return Fail(key, requirement, *v);
    }
    *out = v->get<double>();
    return absl::OkStatus();
  }

  absl::Status Bool(const char* key, bool* out) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_boolean()) return Fail(key, "true or false", *v);
    *out = v->get<bool>();
    return absl::OkStatus();
  }

  absl::Status OneOf(const char* key, std::string* out, const std::vector<std::string>& accepted) {
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    const std::string requirement = absl::StrCat("one of ", absl::StrJoin(accepted, ", "));
    if (!v->is_string()) return Fail(key, requirement, *v);
    const std::string value = v->get<std::string>();
    if (std::find(accepted.begin(), accepted.end(), value) == accepted.end()) return Fail(key, requirement, *v);
    *out = value;
    return absl::OkStatus();
  }

  void Unknown(std::vector<std::string>* out) const {
    if (out == nullptr || !section_.is_object()) return;
    for (const auto& [key, value] : section_.items()) {
      if (seen_.count(key) == 0) out->push_back(absl::StrCat(name_, ".", key));
    }
  }

 private:
  const Json& section_;
  std::string name_;
  std::set<std::string> seen_;
};

absl::Status ParseLoraSection(const Json& lora, FineTuneSettings& s, std::vector<std::string>* ignored) {
  SectionReader r(lora, "lora");
  RETURN_IF_ERROR(r.CheckObject());
  RETURN_IF_ERROR(
      r.Int("r", &s.lora_r, "an integer >= 1 (the LoRA rank, e.g. 8 or 16)", [](int64_t v) { return v >= 1; }));
  RETURN_IF_ERROR(r.Number("lora_alpha", &s.lora_alpha, "a number > 0", [](double v) { return v > 0; }));
  RETURN_IF_ERROR(
      r.Number("lora_dropout", &s.lora_dropout, "a probability in [0, 1)", [](double v) { return v >= 0 && v < 1; }));
  RETURN_IF_ERROR(r.Bool("use_rslora", &s.use_rslora));
  if (const Json* t = r.Find("target_modules"); t != nullptr) {
    constexpr char kRequirement[] =
        "a non-empty list of module names (e.g. [\"q_proj\", \"v_proj\"]) or \"all-linear\"";
    if (t->is_string()) {
      if (t->get<std::string>() != "all-linear") return r.Fail("target_modules", kRequirement, *t);
      s.target_modules = {"all-linear"};
    } else if (t->is_array() && !t->empty()) {
      s.target_modules.clear();
      for (const Json& m : *t) {
        if (!m.is_string() || m.get<std::string>().empty()) return r.Fail("target_modules", kRequirement, *t);
        s.target_modules.push_back(m.get<std::string>());
      }
    } else {
      return r.Fail("target_modules", kRequirement, *t);
    }
  }
  r.Unknown(ignored);
  return absl::OkStatus();
}

absl::Status ParseTrainingSection(const Json& training, FineTuneSettings& s, std::vector<std::string>* ignored) {
  SectionReader r(training, "training");
  RETURN_IF_ERROR(r.CheckObject());
  auto positive = [](int64_t v) { return v >= 1; };
  auto non_negative = [](int64_t v) { return v >= 0; };
  RETURN_IF_ERROR(r.Int("num_epochs", &s.num_epochs, "a whole number of epochs >= 1", positive));
  RETURN_IF_ERROR(r.Int("max_steps", &s.max_steps, "-1 (no limit) or a number of optimizer steps >= 1",
                        [](int64_t v) { return v == -1 || v >= 1; }));
  RETURN_IF_ERROR(
      r.Number("learning_rate", &s.learning_rate, "a number > 0 (e.g. 2e-4 for LoRA)", [](double v) { return v > 0; }));
  RETURN_IF_ERROR(r.OneOf("lr_scheduler", &s.lr_scheduler, {"constant", "linear", "cosine"}));
  RETURN_IF_ERROR(r.Int("warmup_steps", &s.warmup_steps, "an integer >= 0", non_negative));
  RETURN_IF_ERROR(r.Number("warmup_ratio", &s.warmup_ratio, "a fraction of the steps in [0, 1]",
                           [](double v) { return v >= 0 && v <= 1; }));
  RETURN_IF_ERROR(r.Int("per_device_batch_size", &s.per_device_batch_size, "an integer >= 1", positive));
  RETURN_IF_ERROR(r.Int("gradient_accumulation_steps", &s.gradient_accumulation_steps, "an integer >= 1", positive));
  RETURN_IF_ERROR(r.Int("max_seq_len", &s.max_seq_len, "a number of tokens >= 2", [](int64_t v) { return v >= 2; }));
  RETURN_IF_ERROR(r.Number("weight_decay", &s.weight_decay, "a number >= 0", [](double v) { return v >= 0; }));
  RETURN_IF_ERROR(r.Number("max_grad_norm", &s.max_grad_norm, "a number >= 0 (0 turns clipping off)",
                           [](double v) { return v >= 0; }));
  RETURN_IF_ERROR(
      r.Number("adam_beta1", &s.adam_beta1, "a number in [0, 1)", [](double v) { return v >= 0 && v < 1; }));
  RETURN_IF_ERROR(
      r.Number("adam_beta2", &s.adam_beta2, "a number in [0, 1)", [](double v) { return v >= 0 && v < 1; }));
  RETURN_IF_ERROR(r.Number("adam_epsilon", &s.adam_epsilon, "a number >= 0", [](double v) { return v >= 0; }));
  RETURN_IF_ERROR(r.Int("seed", &s.seed, "an integer >= 0", non_negative));
  RETURN_IF_ERROR(r.OneOf("dtype", &s.dtype, {"fp32", "bf16", "fp16"}));
  if (const Json* d = r.Find("device"); d != nullptr) {
    if (!d->is_string()) return r.Fail("device", "auto, cpu, cuda or cuda:N", *d);
    auto parsed = ParseDeviceRequest(d->get<std::string>());
    if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat("training.", parsed.status().message()));
    s.device = d->get<std::string>();
  }
  RETURN_IF_ERROR(r.Bool("train_on_input", &s.train_on_input));
  RETURN_IF_ERROR(r.Bool("packing", &s.packing));
  RETURN_IF_ERROR(r.Bool("gradient_checkpointing", &s.gradient_checkpointing));
  RETURN_IF_ERROR(r.OneOf("attn_implementation", &s.attn_implementation, {"sdpa", "eager"}));
  RETURN_IF_ERROR(r.Int("save_steps", &s.save_steps, "an integer >= 0 (0 saves only at epoch ends)", non_negative));
  RETURN_IF_ERROR(r.Bool("eval_every_epoch", &s.eval_every_epoch));
  RETURN_IF_ERROR(r.Int("logging_steps", &s.logging_steps, "an integer >= 1", positive));
  RETURN_IF_ERROR(r.Bool("full_finetune", &s.full_finetune));
  r.Unknown(ignored);
  return absl::OkStatus();
}

// PEFT's names for the model's linear layers: "all-linear" expanded, PEFT's per-family default (q_proj and v_proj,
// phi3's fused qkv_proj) when none are given, every name checked. Sorted, as PEFT stores them as a set.
absl::StatusOr<std::vector<std::string>> ResolveTargetModules(const std::vector<std::string>& requested,
                                                              const ModelArchitecture& arch) {
  const auto shapes = LoraTargetShapes(arch);
  std::set<std::string> out;
  if (requested.empty()) {
    if (shapes.count("qkv_proj") != 0) {
      out.insert("qkv_proj");
    } else {
      out = {"q_proj", "v_proj"};
    }
  }
  for (const std::string& m : requested) {
    if (m == "all-linear") {
      for (const auto& [name, shape] : shapes) out.insert(name);
      continue;
    }
    if (shapes.count(m) == 0) {
      std::vector<std::string> names;
      for (const auto& [name, shape] : shapes) names.push_back(name);
      return absl::InvalidArgumentError(absl::StrCat("lora.target_modules: '", m, "' is not a linear layer of ",
                                                     arch.family, " models; choose from ", absl::StrJoin(names, ", "),
                                                     " or \"all-linear\""));
    }
    out.insert(m);
  }
  return std::vector<std::string>(out.begin(), out.end());
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The dropout generator's seed for optimizer step `step`: a function of (seed, step) only, so a resumed run draws
// the masks the uninterrupted run drew.
uint64_t StepSeed(int64_t seed, int64_t step) {
  return SplitMix64(static_cast<uint64_t>(seed) ^ SplitMix64(0x5EEDull + static_cast<uint64_t>(step)));
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, " is missing or unreadable"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    return absl::PermissionDeniedError(absl::StrCat("cannot write ", path, "; check the directory's permissions"));
  out << text;
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("writing ", path, " failed (disk full?)"));
  return absl::OkStatus();
}

std::string FormatDouble(double v) {
  std::ostringstream os;
  os.precision(4);
  os << v;
  return os.str();
}

// Labels that the shifted loss counts: every label but the one in column 0 of each row.
int64_t CountedLabels(const Batch& b) {
  int64_t n = 0;
  for (int64_t r = 0; r < b.rows; ++r) {
    for (int64_t c = 1; c < b.cols; ++c) n += b.labels[r * b.cols + c] != kIgnoreLabel ? 1 : 0;
  }
  return n;
}

at::Tensor ToDevice(const std::vector<int64_t>& v, int64_t rows, int64_t cols, const c10::Device& device) {
  return at::tensor(v, at::kLong).view({rows, cols}).to(device);
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
absl::Status ReplaceDirectory(const fs::path& tmp, const fs::path& target) {
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

// ---------------------------------------------------------------------------------------------------------------
// Training state kept in checkpoints

struct TrainerState {
  int64_t step = 0;        // optimizer steps done
  int64_t next_epoch = 0;  // 0-based epoch of the next micro-batch
  int64_t next_batch = 0;  // its index within that epoch's micro-batches
  int64_t last_epoch = 0;  // 1-based epoch of the last step (0 before any)
  int64_t train_tokens = 0;
  std::vector<double> step_losses;
  std::vector<double> eval_losses;
};

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

absl::StatusOr<TrainerState> ParseTrainerState(const std::string& text, int64_t expected_step, std::string* fingerprint,
                                               int64_t* total_steps) {
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
       {"device", "logging_steps", "save_steps", "eval_every_epoch", "gradient_checkpointing", "attn_implementation"}) {
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

// The model's LoRA tensors and the optimizer's state as they were at a checkpoint, read and checked before any of
// it is applied, so an unusable checkpoint changes nothing.
struct LoadedCheckpoint {
  TrainerState state;
  std::map<std::string, at::Tensor> lora;
  std::vector<AdamWParamState> optimizer;
};

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

// Token-weighted mean loss over the examples, in eval mode and without grad.
absl::StatusOr<double> Evaluate(CausalLM& model, const std::vector<Example>& examples, const BatchOptions& options,
                                const c10::Device& device, const std::function<bool()>& cancelled) {
  const bool was_training = model.training();
  model.set_training(false);
  at::NoGradGuard no_grad;
  std::vector<size_t> order(examples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  BatchOptions eval_options = options;
  eval_options.packing = false;
  double sum = 0;
  int64_t count = 0;
  for (const Batch& b : MakeBatches(examples, order, eval_options)) {
    if (cancelled && cancelled()) {
      model.set_training(was_training);
      return absl::CancelledError("fine-tune cancelled during evaluation");
    }
    const int64_t n = CountedLabels(b);
    if (n == 0) continue;
    at::Tensor logits =
        model.Forward(ToDevice(b.input_ids, b.rows, b.cols, device), ToDevice(b.attention_mask, b.rows, b.cols, device),
                      ToDevice(b.position_ids, b.rows, b.cols, device));
    sum += CausalLmLoss(logits, ToDevice(b.labels, b.rows, b.cols, device)).item<double>() * static_cast<double>(n);
    count += n;
  }
  model.set_training(was_training);
  return count > 0 ? sum / static_cast<double>(count) : 0.0;
}

// fp32 L2 norm of all grads together, for runs without clipping.
double GradNorm(const std::vector<at::Tensor>& params) {
  double total = 0;
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) total += p.grad().to(at::kFloat).pow(2).sum().item<double>();
  }
  return std::sqrt(total);
}

std::string DescribeExamples(std::string_view split, const ExampleSet& set, int64_t max_seq_len) {
  return absl::StrCat(std::string(split), ": ", set.examples.size(), " examples from ", set.rows, " rows (",
                      set.truncated, " truncated at max_seq_len ", max_seq_len, ", ", set.skipped_rows.size(),
                      " rows skipped), ", set.tokens, " tokens, ", set.label_tokens, " with a loss");
}

std::string RowList(const std::vector<size_t>& rows) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < rows.size() && i < 20; ++i) parts.push_back(absl::StrCat(rows[i] + 1));
  if (rows.size() > 20) parts.push_back(absl::StrCat("and ", rows.size() - 20, " more"));
  return absl::StrJoin(parts, ", ");
}

absl::StatusOr<FineTuneResult> RunFineTuneImpl(const FineTuneSpec& spec, const FineTuneHooks& hooks) {
  auto event = [&](std::string_view level, const std::string& message) {
    if (hooks.on_event) hooks.on_event(level, message);
  };
  auto cancelled = [&] { return hooks.cancelled && hooks.cancelled(); };

  // Settings.
  std::vector<std::string> ignored;
  ASSIGN_OR_RETURN(FineTuneSettings s, ParseFineTuneSettings(spec.lora, spec.training, &ignored));
  if (s.full_finetune) {
    return absl::UnimplementedError(
        "training.full_finetune is not implemented yet; set it to false to train a LoRA adapter");
  }
  if (spec.model_dir.empty()) return absl::InvalidArgumentError("model_dir is empty; give the local model directory");
  if (spec.output_dir.empty()) return absl::InvalidArgumentError("output_dir is empty; give where the adapter goes");
  for (const std::string& key : ignored) event("warning", absl::StrCat(key, " is not a setting we know; ignored"));

  // Device.
  ASSIGN_OR_RETURN(DeviceRequest request, ParseDeviceRequest(s.device));
  ASSIGN_OR_RETURN(c10::Device device, ResolveDevice(request));
  at::ScalarType dtype = at::kFloat;
  if (s.dtype == "bf16") dtype = at::kBFloat16;
  if (s.dtype == "fp16") {
    if (device.is_cpu()) {
      return absl::FailedPreconditionError(
          "training.dtype fp16 is not supported on the CPU; use bf16 or fp32 (or train on a GPU)");
    }
    dtype = at::kHalf;
    event("warning", "training.dtype fp16 trains the LoRA weights in fp16 without loss scaling; bf16 is safer");
  }
  if (spec.threads > 0) at::set_num_threads(spec.threads);
  event("info", absl::StrCat("device: ", DescribeDevice(device), "; dtype ", s.dtype, "; attention ", s.attn_implementation));

  // Model architecture, for the LoRA targets.
  ASSIGN_OR_RETURN(std::string config_json, ReadText(spec.model_dir + "/config.json"));
  std::string generation_json;
  if (auto g = ReadText(spec.model_dir + "/generation_config.json"); g.ok()) generation_json = *g;
  ASSIGN_OR_RETURN(ModelArchitecture arch, ParseModelConfig(config_json, generation_json, "config.json"));
  ASSIGN_OR_RETURN(s.target_modules, ResolveTargetModules(s.target_modules, arch));

  // Tokenizer and examples.
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::FromFile(spec.model_dir + "/tokenizer.json"));
  ChatTemplateConfig tokenizer_config;
  if (auto c = ReadTokenizerConfig(spec.model_dir + "/tokenizer_config.json"); c.ok()) {
    tokenizer_config = *std::move(c);
  } else if (c.status().code() != absl::StatusCode::kNotFound) {
    return c.status();
  }
  std::optional<ChatFormat> chat;
  if (spec.prompt.mode == PromptFormat::Mode::kChat) {
    ASSIGN_OR_RETURN(chat, LoadChatFormat(spec.model_dir));
  }
  ExampleOptions example_options;
  example_options.max_seq_len = s.max_seq_len;
  example_options.train_on_input = s.train_on_input;
  example_options.eos_id = ResolveEosId(*tokenizer, tokenizer_config.eos_token, arch.eos_token_ids);
  int32_t pad_id = ResolvePadId(*tokenizer, tokenizer_config.pad_token, example_options.eos_id);
  if (pad_id < 0 || pad_id >= arch.vocab_size) pad_id = 0;  // padding is masked out, any valid id does
  ASSIGN_OR_RETURN(ExampleBuilder builder,
                   ExampleBuilder::Create(tokenizer.get(), chat ? &*chat : nullptr, spec.prompt, example_options));
  if (spec.train_rows.empty()) {
    return absl::FailedPreconditionError("no trainable example: the train split has no rows");
  }
  ASSIGN_OR_RETURN(ExampleSet train, builder.BuildAll(spec.train_rows, "train", spec.train_row_labels));
  event("info", DescribeExamples("train", train, s.max_seq_len));
  if (train.truncated > 0) {
    event("warning", absl::StrCat(train.truncated, " train examples were cut at training.max_seq_len ", s.max_seq_len,
                                  "; raise it to train on whole examples"));
  }
  if (!train.skipped_rows.empty()) {
    event("warning",
          absl::StrCat("train rows skipped because no token would carry a loss: ", RowList(train.skipped_rows)));
  }
  if (train.examples.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("no trainable example: none of the ", train.rows,
                                                      " train rows leaves a completion token within "
                                                      "training.max_seq_len ",
                                                      s.max_seq_len,
                                                      "; raise max_seq_len, shorten the prompt, or check the dataset"));
  }
  ExampleSet test;
  if (!spec.test_rows.empty()) {
    ASSIGN_OR_RETURN(test, builder.BuildAll(spec.test_rows, "test", spec.test_row_labels));
    event("info", DescribeExamples("test", test, s.max_seq_len));
  }
  for (const ExampleSet* set : {&train, &test}) {
    for (const Example& ex : set->examples) {
      for (int32_t id : ex.input_ids) {
        if (id < 0 || id >= arch.vocab_size) {
          return absl::FailedPreconditionError(absl::StrCat("tokenizer.json gives token id ", id,
                                                            " but the model's vocab_size is ", arch.vocab_size,
                                                            "; the tokenizer does not belong to this model"));
        }
      }
    }
  }

  // Micro-batches and steps. Packing fills rows in epoch order, so each epoch can have its own count.
  BatchOptions batch_options;
  batch_options.batch_size = s.per_device_batch_size;
  batch_options.max_seq_len = s.max_seq_len;
  batch_options.packing = s.packing;
  batch_options.pad_id = pad_id;
  const size_t n_examples = train.examples.size();
  auto epoch_batches = [&](int64_t epoch) {
    return MakeBatches(train.examples, EpochOrder(n_examples, static_cast<uint64_t>(s.seed), epoch, true),
                       batch_options);
  };
  auto steps_of = [&](int64_t micro_batches) {
    return (micro_batches + s.gradient_accumulation_steps - 1) / s.gradient_accumulation_steps;
  };
  auto epoch_steps = [&](int64_t epoch) -> int64_t {
    if (!s.packing)
      return steps_of((static_cast<int64_t>(n_examples) + s.per_device_batch_size - 1) / s.per_device_batch_size);
    return steps_of(static_cast<int64_t>(epoch_batches(epoch).size()));
  };
  int64_t total_steps = 0;
  int64_t num_epochs = 0;
  if (s.max_steps > 0) {
    total_steps = s.max_steps;
    for (int64_t covered = 0; covered < total_steps; ++num_epochs) covered += epoch_steps(num_epochs);
  } else {
    num_epochs = s.num_epochs;
    for (int64_t e = 0; e < num_epochs; ++e) total_steps += epoch_steps(e);
  }
  auto schedule = LrSchedule::Create({s.lr_scheduler, total_steps, s.warmup_steps, s.warmup_ratio});
  if (!schedule.ok()) return absl::InvalidArgumentError(absl::StrCat("training.", schedule.status().message()));
  event("info", absl::StrCat("schedule: ", total_steps, " optimizer steps over ", num_epochs, " epochs (",
                             epoch_steps(0), " steps in the first), micro-batches of ", s.per_device_batch_size,
                             s.packing ? " packed rows" : " examples", " x ", s.gradient_accumulation_steps,
                             " accumulated; ", s.lr_scheduler, " lr ", FormatDouble(s.learning_rate), " with ",
                             schedule->warmup_steps(), " warmup steps"));

  // Model with LoRA.
  BuildOptions build;
  build.dtype = dtype;
  build.device = device;
  build.lora.rank = s.lora_r;
  build.lora.alpha = s.lora_alpha;
  build.lora.use_rslora = s.use_rslora;
  build.lora.dropout = s.lora_dropout;
  build.lora.target_modules = s.target_modules;
  build.lora.seed = static_cast<uint64_t>(s.seed);
  build.gradient_checkpointing = s.gradient_checkpointing;
  ASSIGN_OR_RETURN(build.attention, ParseAttentionImpl(s.attn_implementation));
  ASSIGN_OR_RETURN(std::unique_ptr<CausalLM> model, CausalLM::Load(spec.model_dir, build));
  const std::vector<std::pair<std::string, at::Tensor>> named_params = model->LoraParameters();
  std::vector<at::Tensor> params;
  for (const auto& [name, t] : named_params) params.push_back(t);
  event("info", absl::StrCat("model: ", model->ParameterCount(), " parameters, ", model->TrainableParameterCount(),
                             " trainable (LoRA r ", s.lora_r, ", alpha ", FormatDouble(s.lora_alpha), " on ",
                             absl::StrJoin(s.target_modules, ", "), ")"));
  AdamWSettings adam;
  adam.lr = s.learning_rate;
  adam.beta1 = s.adam_beta1;
  adam.beta2 = s.adam_beta2;
  adam.eps = s.adam_epsilon;
  adam.weight_decay = s.weight_decay;
  AdamWOptimizer optimizer(params, adam);

  // Resume.
  const std::string fingerprint = RunFingerprint(s, train, config_json);
  TrainerState st;
  std::vector<int64_t> saved;
  if (!spec.checkpoint_dir.empty()) {
    RETURN_IF_ERROR(MakeDirectories(spec.checkpoint_dir, "checkpoint"));
    RemoveStaleTemporaries(spec.checkpoint_dir);
    saved = ListCheckpoints(spec.checkpoint_dir);
    for (auto it = saved.rbegin(); it != saved.rend(); ++it) {
      const fs::path dir = fs::path(spec.checkpoint_dir) / CheckpointName(*it);
      auto loaded = ReadCheckpoint(dir, *it, named_params, fingerprint, total_steps);
      if (loaded.status().code() == absl::StatusCode::kFailedPrecondition) return loaded.status();
      if (!loaded.ok()) {
        event("warning", absl::StrCat(CheckpointName(*it), " cannot be resumed from (", loaded.status().message(),
                                      "); trying an older one"));
        continue;
      }
      {
        at::NoGradGuard no_grad;
        for (const auto& [name, param] : named_params) {
          at::Tensor dst = param;
          dst.copy_(loaded->lora.at(name));
        }
      }
      RETURN_IF_ERROR(optimizer.ImportState(loaded->optimizer));
      st = std::move(loaded->state);
      event("info",
            absl::StrCat("resumed from ", CheckpointName(*it), " (step ", st.step, " of ", total_steps, ", epoch ",
                         std::min<int64_t>(st.next_epoch + 1, num_epochs), " of ", num_epochs, ")"));
      break;
    }
  }

  // Training.
  using Clock = std::chrono::steady_clock;
  ResetPeakDeviceMemory(device);  // progress reports the peak of training, not of loading
  auto window_start = Clock::now();
  int64_t window_tokens = 0;
  double window_loss = 0;
  int64_t window_steps = 0;
  model->set_training(true);
  auto save_checkpoint = [&](double loss) -> absl::Status {
    if (spec.checkpoint_dir.empty()) return absl::OkStatus();
    const fs::path dir = fs::path(spec.checkpoint_dir) / CheckpointName(st.step);
    RETURN_IF_ERROR(WriteCheckpoint(dir, *model, optimizer, named_params, spec.base_model_name,
                                    TrainerStateJson(st, total_steps, fingerprint)));
    std::vector<int64_t> all = ListCheckpoints(spec.checkpoint_dir);
    std::error_code ec;
    for (size_t i = 0; i + kCheckpointsKept < all.size(); ++i) {
      fs::remove_all(fs::path(spec.checkpoint_dir) / CheckpointName(all[i]), ec);
    }
    event("info", absl::StrCat("saved ", CheckpointName(st.step), " (epoch ", st.last_epoch, ", loss ",
                               FormatDouble(loss), ")"));
    if (hooks.on_checkpoint) hooks.on_checkpoint({st.step, static_cast<int>(st.last_epoch), dir.string(), loss});
    return absl::OkStatus();
  };

  for (int64_t epoch = st.next_epoch; epoch < num_epochs && st.step < total_steps; ++epoch) {
    const std::vector<Batch> batches = epoch_batches(epoch);
    const int64_t n_batches = static_cast<int64_t>(batches.size());
    int64_t b = epoch == st.next_epoch ? st.next_batch : 0;
    while (b < n_batches && st.step < total_steps) {
      const int64_t group_end = std::min(n_batches, b + s.gradient_accumulation_steps);
      int64_t group_labels = 0;
      for (int64_t i = b; i < group_end; ++i) group_labels += CountedLabels(batches[i]);

      at::manual_seed(StepSeed(s.seed, st.step));
      optimizer.ZeroGrad();
      double loss_sum = 0;
      int64_t group_tokens = 0;
      for (int64_t i = b; i < group_end; ++i) {
        if (cancelled()) {
          return absl::CancelledError(absl::StrCat("fine-tune cancelled at step ", st.step, " of ", total_steps,
                                                   "; the checkpoints in checkpoint_dir are kept for a resume"));
        }
        const Batch& batch = batches[i];
        group_tokens += batch.tokens;
        const int64_t n = CountedLabels(batch);
        if (n == 0) continue;
        at::Tensor logits = model->Forward(ToDevice(batch.input_ids, batch.rows, batch.cols, device),
                                           ToDevice(batch.attention_mask, batch.rows, batch.cols, device),
                                           ToDevice(batch.position_ids, batch.rows, batch.cols, device));
        at::Tensor loss = CausalLmLoss(logits, ToDevice(batch.labels, batch.rows, batch.cols, device));
        // Each micro-batch's mean, weighted by its share of the step's label tokens: the step's gradient is that
        // of the mean over all of them, as one big batch would give.
        (loss * (static_cast<double>(n) / static_cast<double>(group_labels))).backward();
        loss_sum += loss.item<double>() * static_cast<double>(n);
      }
      const double step_loss = group_labels > 0 ? loss_sum / static_cast<double>(group_labels) : 0.0;
      double grad_norm = 0;
      if (s.max_grad_norm > 0) {
        ASSIGN_OR_RETURN(grad_norm, ClipGradNorm(params, s.max_grad_norm));
      } else {
        grad_norm = GradNorm(params);
      }
      ASSIGN_OR_RETURN(const double lr, schedule->LearningRate(s.learning_rate, st.step));
      if (group_labels > 0 && std::isfinite(grad_norm)) {
        optimizer.SetLearningRate(lr);
        optimizer.Step();
      } else if (group_labels > 0) {
        event("warning", absl::StrCat("step ", st.step + 1, ": the gradient norm is ", grad_norm,
                                      "; the update was skipped. Lower training.learning_rate or use fp32"));
      }

      st.step += 1;
      st.step_losses.push_back(step_loss);
      st.train_tokens += group_tokens;
      st.last_epoch = epoch + 1;
      b = group_end;
      const bool epoch_end = b == n_batches;
      const bool last = st.step == total_steps;
      st.next_epoch = epoch_end ? epoch + 1 : epoch;
      st.next_batch = epoch_end ? 0 : b;
      window_loss += step_loss;
      window_steps += 1;
      window_tokens += group_tokens;

      std::optional<double> eval_loss;
      if (!test.examples.empty() && ((epoch_end && s.eval_every_epoch) || last)) {
        ASSIGN_OR_RETURN(double value, Evaluate(*model, test.examples, batch_options, device, hooks.cancelled));
        eval_loss = value;
        st.eval_losses.push_back(value);
        event("info", absl::StrCat("epoch ", epoch + 1, " eval loss ", FormatDouble(value), " on ",
                                   test.examples.size(), " test examples (step ", st.step, ")"));
      }
      if (st.step % s.logging_steps == 0 || epoch_end || last) {
        const double seconds = std::chrono::duration<double>(Clock::now() - window_start).count();
        FineTuneProgress p;
        p.step = st.step;
        p.total_steps = total_steps;
        p.epoch = static_cast<int>(epoch + 1);
        p.num_epochs = static_cast<int>(num_epochs);
        p.tokens = st.train_tokens;
        p.loss = window_loss / static_cast<double>(window_steps);
        p.learning_rate = lr;
        p.grad_norm = grad_norm;
        p.tokens_per_second = seconds > 0 ? static_cast<double>(window_tokens) / seconds : 0.0;
        p.eval_loss = eval_loss;
        p.step_seconds = seconds / static_cast<double>(window_steps);
        p.report_steps = window_steps;
        p.peak_device_memory_bytes = PeakDeviceMemoryBytes(device);
        if (hooks.on_progress) hooks.on_progress(p);
        window_start = Clock::now();
        window_tokens = 0;
        window_loss = 0;
        window_steps = 0;
      }
      if ((s.save_steps > 0 && st.step % s.save_steps == 0) || epoch_end || last) {
        RETURN_IF_ERROR(save_checkpoint(step_loss));
      }
    }
  }

  // The final adapter, complete or absent under its name.
  const fs::path output(spec.output_dir);
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
  RETURN_IF_ERROR(SavePeftAdapter(*model, spec.base_model_name, tmp.string()));
  RETURN_IF_ERROR(ReplaceDirectory(tmp, output));
  event("info", absl::StrCat("adapter written to ", spec.output_dir, " after ", st.step, " steps"));

  FineTuneResult result;
  result.steps = st.step;
  result.step_losses = std::move(st.step_losses);
  result.eval_losses = std::move(st.eval_losses);
  result.adapter_dir = spec.output_dir;
  result.train_tokens = st.train_tokens;
  result.settings = s.ToJson();
  return result;
}

}  // namespace

Json FineTuneSettings::ToJson() const {
  Json lora = {{"r", lora_r},
               {"lora_alpha", lora_alpha},
               {"lora_dropout", lora_dropout},
               {"target_modules", target_modules},
               {"use_rslora", use_rslora}};
  Json training = {{"num_epochs", num_epochs},
                   {"max_steps", max_steps},
                   {"learning_rate", learning_rate},
                   {"lr_scheduler", lr_scheduler},
                   {"warmup_steps", warmup_steps},
                   {"warmup_ratio", warmup_ratio},
                   {"per_device_batch_size", per_device_batch_size},
                   {"gradient_accumulation_steps", gradient_accumulation_steps},
                   {"max_seq_len", max_seq_len},
                   {"weight_decay", weight_decay},
                   {"max_grad_norm", max_grad_norm},
                   {"adam_beta1", adam_beta1},
                   {"adam_beta2", adam_beta2},
                   {"adam_epsilon", adam_epsilon},
                   {"seed", seed},
                   {"dtype", dtype},
                   {"device", device},
                   {"train_on_input", train_on_input},
                   {"packing", packing},
                   {"gradient_checkpointing", gradient_checkpointing},
                   {"attn_implementation", attn_implementation},
                   {"save_steps", save_steps},
                   {"eval_every_epoch", eval_every_epoch},
                   {"logging_steps", logging_steps},
                   {"full_finetune", full_finetune}};
  return Json{{"lora", lora}, {"training", training}};
}

absl::StatusOr<FineTuneSettings> ParseFineTuneSettings(const Json& lora, const Json& training,
                                                       std::vector<std::string>* ignored_keys) {
  FineTuneSettings s;
  RETURN_IF_ERROR(ParseLoraSection(lora, s, ignored_keys));
  RETURN_IF_ERROR(ParseTrainingSection(training, s, ignored_keys));
  return s;
}

absl::StatusOr<FineTuneResult> RunFineTune(const FineTuneSpec& spec, const FineTuneHooks& hooks) {
  try {
    return RunFineTuneImpl(spec, hooks);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    if (absl::StrContains(what, "out of memory")) {
      return absl::ResourceExhaustedError(
          absl::StrCat("training ran out of memory (", what.substr(0, 200),
                       "); lower training.per_device_batch_size or max_seq_len, or raise gradient_accumulation_steps"));
    }
    return absl::InternalError(absl::StrCat("libtorch failed during fine-tuning: ", what.substr(0, 500)));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("fine-tuning failed: ", e.what()));
  }
}

}  // namespace tuneforge
