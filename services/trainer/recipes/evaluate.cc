// The evaluation recipe, top to bottom: settings, device, the model's files, examples of the split, then for the
// base and each adapter: the model, the loss over every example, and sample generations.
#include "services/trainer/recipes/evaluate.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "services/trainer/data/batching.h"
#include "services/trainer/data/example_tokenizer.h"
#include "services/trainer/data/labels.h"
#include "services/trainer/model/causal_lm.h"
#include "services/trainer/model/device.h"
#include "services/trainer/model/generation.h"
#include "services/trainer/peft/lora_adapter.h"
#include "services/trainer/train/checkpoints.h"
#include "services/trainer/train/training_step.h"

namespace tuneforge {

namespace {

using Json = nlohmann::json;

struct EvaluateSettings {
  int64_t max_examples = 0;  // 0: every row
  int64_t num_samples = 3;
  int64_t max_seq_len = 2048;
  int64_t batch_size = 8;
  std::string device = "auto";
  std::string dtype = "fp32";
};

absl::StatusOr<EvaluateSettings> ParseEvaluateSettings(const Json& j) {
  EvaluateSettings s;
  if (!j.is_object()) return absl::InvalidArgumentError("evaluation settings must be a JSON object");
  auto integer = [&](const char* key, int64_t* out, int64_t low, int64_t high) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_number_integer() || it->get<int64_t>() < low || it->get<int64_t>() > high) {
      return absl::InvalidArgumentError(absl::StrCat("evaluation.", key, " must be an integer in [", low, ", ", high,
                                                     "], got ", it->dump()));
    }
    *out = it->get<int64_t>();
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(integer("max_examples", &s.max_examples, 0, int64_t{1} << 40));
  RETURN_IF_ERROR(integer("num_samples", &s.num_samples, 0, 100));
  RETURN_IF_ERROR(integer("max_seq_len", &s.max_seq_len, 1, 131072));
  RETURN_IF_ERROR(integer("batch_size", &s.batch_size, 1, 1024));
  for (auto [key, out] : {std::pair<const char*, std::string*>{"device", &s.device}, {"dtype", &s.dtype}}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_string()) return absl::InvalidArgumentError(absl::StrCat("evaluation.", key, " must be a string"));
    *out = it->get<std::string>();
  }
  if (s.dtype != "fp32" && s.dtype != "bf16" && s.dtype != "fp16") {
    return absl::InvalidArgumentError(absl::StrCat("evaluation.dtype '", s.dtype, "' is not fp32, bf16 or fp16"));
  }
  return s;
}

// The prompt of an example (the tokens before the first one with a loss) and its reference (the tokens with one).
void SplitExample(const Example& ex, std::vector<int64_t>* prompt, std::vector<int32_t>* reference) {
  size_t first = 0;
  while (first < ex.labels.size() && ex.labels[first] == kIgnoreLabel) ++first;
  for (size_t i = 0; i < first; ++i) prompt->push_back(ex.input_ids[i]);
  for (size_t i = first; i < ex.labels.size(); ++i) {
    if (ex.labels[i] != kIgnoreLabel) reference->push_back(ex.labels[i]);
  }
}

const char* StopReason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos: return "eos";
    case FinishReason::kStopString: return "stop_string";
    case FinishReason::kLength: return "max_new_tokens";
  }
  return "max_new_tokens";
}

absl::StatusOr<std::vector<CandidateMetrics>> RunEvaluationImpl(const EvaluateSpec& spec, const EvaluateHooks& hooks) {
  auto event = [&](std::string_view level, const std::string& message) {
    if (hooks.on_event) hooks.on_event(level, message);
  };

  // Settings and device.
  ASSIGN_OR_RETURN(const EvaluateSettings s, ParseEvaluateSettings(spec.evaluation));
  ASSIGN_OR_RETURN(DeviceRequest request, ParseDeviceRequest(s.device));
  ASSIGN_OR_RETURN(const c10::Device device, ResolveDevice(request));
  at::ScalarType dtype = at::kFloat;
  if (s.dtype == "bf16") dtype = at::kBFloat16;
  if (s.dtype == "fp16") {
    if (device.is_cpu()) return absl::FailedPreconditionError("evaluation.dtype fp16 needs a GPU; use bf16 or fp32");
    dtype = at::kHalf;
  }
  if (spec.threads > 0) at::set_num_threads(spec.threads);
  event("info", absl::StrCat("device: ", DescribeDevice(device), "; dtype ", s.dtype));

  // The model's files, the generation settings, and the examples of the split.
  ASSIGN_OR_RETURN(const std::string config_json, ReadText(spec.model_dir + "/config.json"));
  std::string generation_json;
  if (auto g = ReadText(spec.model_dir + "/generation_config.json"); g.ok()) generation_json = *g;
  ASSIGN_OR_RETURN(const ModelArchitecture arch, ParseModelConfig(config_json, generation_json, "config.json"));
  ExampleOptions example_options;
  example_options.max_seq_len = s.max_seq_len;
  ASSIGN_OR_RETURN(std::unique_ptr<ExampleTokenizer> tokenizer,
                   ExampleTokenizer::Load(spec.model_dir, arch, spec.prompt, example_options));
  GenerationConfig generation_defaults;
  generation_defaults.max_new_tokens = 64;
  for (int64_t id : arch.eos_token_ids) generation_defaults.eos_token_ids.push_back(id);
  if (generation_defaults.eos_token_ids.empty() && tokenizer->eos_id() >= 0) {
    generation_defaults.eos_token_ids.push_back(tokenizer->eos_id());
  }
  generation_defaults.pad_token_id = tokenizer->pad_id();
  ASSIGN_OR_RETURN(const GenerationConfig generation,
                   ParseGenerationConfig(spec.generation.dump(), "generation", generation_defaults));
  std::vector<Json> rows = spec.rows;
  std::vector<std::string> labels = spec.row_labels;
  if (s.max_examples > 0 && static_cast<int64_t>(rows.size()) > s.max_examples) {
    rows.resize(s.max_examples);
    if (labels.size() > rows.size()) labels.resize(rows.size());
  }
  ASSIGN_OR_RETURN(const ExampleSet examples, tokenizer->Build(rows, spec.split, labels, event));
  if (examples.examples.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("nothing to evaluate: none of the ", examples.rows, " ",
                                                      spec.split, " rows leaves a token with a loss within "
                                                      "max_seq_len ", s.max_seq_len));
  }
  // The samples' prompts and references, from the first examples.
  std::vector<std::vector<int64_t>> sample_prompts;
  std::vector<SampleResult> sample_rows;
  for (const Example& ex : examples.examples) {
    if (static_cast<int64_t>(sample_prompts.size()) >= s.num_samples) break;
    std::vector<int64_t> prompt;
    std::vector<int32_t> reference;
    SplitExample(ex, &prompt, &reference);
    if (prompt.empty()) continue;  // nothing to condition on (train_on_input data); no sample
    SampleResult r;
    r.row = static_cast<int64_t>(ex.row);
    std::vector<int32_t> prompt32(prompt.begin(), prompt.end());
    ASSIGN_OR_RETURN(r.prompt, tokenizer->tokenizer().Decode(prompt32, /*skip_special_tokens=*/true));
    ASSIGN_OR_RETURN(r.reference, tokenizer->tokenizer().Decode(reference, /*skip_special_tokens=*/true));
    sample_prompts.push_back(std::move(prompt));
    sample_rows.push_back(std::move(r));
  }
  const DecodeFn decode = [&](const std::vector<int64_t>& ids) {
    std::vector<int32_t> ids32(ids.begin(), ids.end());
    absl::StatusOr<std::string> text = tokenizer->tokenizer().Decode(ids32, /*skip_special_tokens=*/true);
    return text.ok() ? *text : std::string();
  };
  BatchOptions batch_options;
  batch_options.batch_size = s.batch_size;
  batch_options.max_seq_len = s.max_seq_len;
  batch_options.pad_id = tokenizer->pad_id();

  // Each candidate: the base, then the adapters.
  std::vector<EvaluationCandidate> candidates = {EvaluationCandidate{}};
  for (const EvaluationCandidate& c : spec.adapters) candidates.push_back(c);
  std::vector<CandidateMetrics> out;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const EvaluationCandidate& c = candidates[i];
    const std::string label = c.adapter_dir.empty() ? "base" : absl::StrCat("adapter ", c.adapter_name);
    if (hooks.cancelled && hooks.cancelled()) return absl::CancelledError("evaluation cancelled");
    BuildOptions build;
    build.dtype = dtype;
    build.device = device;
    if (!c.adapter_dir.empty()) {
      ASSIGN_OR_RETURN(build.lora, ReadLoraOptions(c.adapter_dir, arch));
      build.lora.dropout = 0;
    }
    ASSIGN_OR_RETURN(std::unique_ptr<CausalLM> model, CausalLM::Load(spec.model_dir, build));
    if (!c.adapter_dir.empty()) RETURN_IF_ERROR(LoadLoraWeights(c.adapter_dir, *model));
    model->set_training(false);

    CandidateMetrics m;
    m.adapter_id = c.adapter_id;
    m.adapter_name = c.adapter_name;
    absl::StatusOr<EvalLoss> loss = EvaluateLoss(*model, examples.examples, batch_options, device, hooks.cancelled);
    if (loss.status().code() == absl::StatusCode::kCancelled) return absl::CancelledError("evaluation cancelled");
    RETURN_IF_ERROR(loss.status());
    m.loss = loss->mean;
    m.perplexity = std::exp(loss->mean);
    m.examples = static_cast<int64_t>(examples.examples.size());
    m.tokens = loss->tokens;
    m.label_tokens = loss->label_tokens;

    if (!sample_prompts.empty()) {
      const auto start = std::chrono::steady_clock::now();
      ASSIGN_OR_RETURN(const std::vector<GeneratedSequence> generated,
                       Generate(*model, sample_prompts, generation, decode));
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      int64_t new_tokens = 0;
      for (size_t k = 0; k < generated.size(); ++k) {
        const GeneratedSequence& g = generated[k];
        new_tokens += g.length;
        SampleResult r = sample_rows[k];
        std::string text = decode(std::vector<int64_t>(g.tokens.begin(), g.tokens.begin() + g.length));
        if (g.finish_reason == FinishReason::kStopString && g.stop_string_offset <= text.size()) {
          text.resize(g.stop_string_offset);
        }
        r.output = std::move(text);
        r.stop_reason = StopReason(g.finish_reason);
        m.samples.push_back(std::move(r));
      }
      m.generation_tokens_per_second = seconds > 0 ? static_cast<double>(new_tokens) / seconds : 0.0;
    }
    event("info", absl::StrCat(label, ": loss ", m.loss, ", perplexity ", m.perplexity, " over ", m.label_tokens,
                               " tokens of ", m.examples, " ", spec.split, " examples"));
    out.push_back(std::move(m));
    if (hooks.on_progress) hooks.on_progress(static_cast<int64_t>(i + 1), static_cast<int64_t>(candidates.size()));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<CandidateMetrics>> RunEvaluation(const EvaluateSpec& spec, const EvaluateHooks& hooks) {
  try {
    return RunEvaluationImpl(spec, hooks);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    return absl::InternalError(absl::StrCat("libtorch failed during evaluation: ", what.substr(0, 500)));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("evaluation failed: ", e.what()));
  }
}

}  // namespace tuneforge
