// The evaluation recipe: a base model and zero or more of its adapters, each scored on a dataset split with the
// training loss (same masking) and perplexity, plus sample generations. Free of gRPC and of libtorch headers.
#ifndef TUNEFORGE_SERVICES_TRAINER_RECIPES_EVALUATE_H_
#define TUNEFORGE_SERVICES_TRAINER_RECIPES_EVALUATE_H_

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/trainer/data/examples.h"

namespace tuneforge {

// An adapter to score besides the base.
struct EvaluationCandidate {
  std::string adapter_id;
  std::string adapter_name;
  std::string adapter_dir;  // a local PEFT adapter directory
};

struct EvaluateSpec {
  std::string model_dir;  // a local Hugging Face model directory
  std::vector<EvaluationCandidate> adapters;
  std::string split;  // "test" or "train", for messages
  std::vector<nlohmann::json> rows;  // the split's rows, in order
  std::vector<std::string> row_labels;
  PromptFormat prompt;
  // {"max_examples": 0, "num_samples": 3, "max_seq_len": 2048, "batch_size": 8, "device": "auto", "dtype": "fp32"};
  // missing keys take these defaults.
  nlohmann::json evaluation = nlohmann::json::object();
  // Generation settings for the samples (ParseGenerationConfig keys); max_new_tokens defaults to 64, EOS and padding
  // to the model's.
  nlohmann::json generation = nlohmann::json::object();
  int threads = 0;  // torch intra-op threads; 0 leaves the process setting alone
};

struct EvaluateHooks {
  std::function<void(std::string_view level, std::string_view message)> on_event;
  std::function<void(int64_t done, int64_t total)> on_progress;  // candidates scored
  std::function<bool()> cancelled;
};

struct SampleResult {
  int64_t row = 0;  // within the split
  std::string prompt, reference, output;
  std::string stop_reason;  // "eos" | "stop_string" | "max_new_tokens"
};

struct CandidateMetrics {
  std::string adapter_id;  // empty: the base
  std::string adapter_name;
  double loss = 0;
  double perplexity = 0;
  int64_t examples = 0, tokens = 0, label_tokens = 0;
  std::vector<SampleResult> samples;
  double generation_tokens_per_second = 0;
};

// The base first, then each adapter in order. INVALID_ARGUMENT naming a bad setting ("evaluation.batch_size ...",
// "generation.top_p ..."); FAILED_PRECONDITION when no row of the split leaves a token with a loss; CANCELLED when
// `cancelled` says so.
absl::StatusOr<std::vector<CandidateMetrics>> RunEvaluation(const EvaluateSpec& spec, const EvaluateHooks& hooks);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_RECIPES_EVALUATE_H_
