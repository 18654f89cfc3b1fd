// Domain records of evaluation jobs' results, shared by their repository, the job service (which stores them when a
// trainer completes the job) and the evaluation service and handler (which show them).
#ifndef TUNEFORGE_SERVICES_METADATA_EVALUATION_RECORDS_H_
#define TUNEFORGE_SERVICES_METADATA_EVALUATION_RECORDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace tuneforge {

struct EvaluationSampleRecord {
  int64_t row = 0;  // within the split
  std::string prompt;
  std::string reference;
  std::string output;
  std::string stop_reason;  // "eos" | "stop_string" | "max_new_tokens"
};

// One candidate of an evaluation job: the base model (adapter_id empty) or the base with one adapter.
struct CandidateResultRecord {
  std::string adapter_id;  // empty for the base, and for an adapter removed since
  std::string adapter_name;
  double loss = 0;        // token-weighted mean over the split's examples
  double perplexity = 0;  // exp(loss)
  int64_t examples = 0;
  int64_t tokens = 0;
  int64_t label_tokens = 0;
  std::vector<EvaluationSampleRecord> samples;
  double generation_tokens_per_second = 0;
};

// The adapters an evaluation job scores besides the base, in order: its settings.evaluation.adapter_ids.
inline std::vector<std::string> EvaluationAdapterIds(const nlohmann::json& settings) {
  std::vector<std::string> out;
  if (!settings.is_object() || !settings.contains("evaluation") || !settings["evaluation"].is_object()) return out;
  const nlohmann::json& ids = settings["evaluation"].value("adapter_ids", nlohmann::json::array());
  if (!ids.is_array()) return out;
  for (const nlohmann::json& id : ids) {
    if (id.is_string()) out.push_back(id.get<std::string>());
  }
  return out;
}

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_EVALUATION_RECORDS_H_
