// Evaluation results repository: runs sql/evaluation_result_*.sql; samples are a JSON array in the row.
#include "services/metadata/evaluation_repository.h"

#include "services/metadata/store_internal.h"

namespace tuneforge {

namespace {

nlohmann::json SamplesToJson(const std::vector<EvaluationSampleRecord>& samples) {
  nlohmann::json out = nlohmann::json::array();
  for (const EvaluationSampleRecord& s : samples) {
    out.push_back({{"row", s.row},
                   {"prompt", s.prompt},
                   {"reference", s.reference},
                   {"output", s.output},
                   {"stop_reason", s.stop_reason}});
  }
  return out;
}

std::vector<EvaluationSampleRecord> SamplesFromJson(const nlohmann::json& samples) {
  std::vector<EvaluationSampleRecord> out;
  if (!samples.is_array()) return out;
  for (const nlohmann::json& s : samples) {
    if (!s.is_object()) continue;
    EvaluationSampleRecord r;
    r.row = s.value("row", int64_t{0});
    r.prompt = s.value("prompt", std::string());
    r.reference = s.value("reference", std::string());
    r.output = s.value("output", std::string());
    r.stop_reason = s.value("stop_reason", std::string());
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

void EvaluationRepository::InsertResult(Tx& tx, const std::string& job_id, int position,
                                        const CandidateResultRecord& r) {
  tx.work().exec_prepared("evaluation_result_insert", job_id, position, NullIfEmpty(r.adapter_id), r.adapter_name,
                          r.loss, r.perplexity, r.examples, r.tokens, r.label_tokens, SamplesToJson(r.samples).dump(),
                          r.generation_tokens_per_second);
}

std::map<std::string, std::vector<CandidateResultRecord>> EvaluationRepository::Results(
    Tx& tx, const std::vector<std::string>& job_ids, bool with_samples) {
  std::map<std::string, std::vector<CandidateResultRecord>> out;
  if (job_ids.empty()) return out;
  for (const pqxx::row& row :
       tx.work().exec_prepared("evaluation_result_list", nlohmann::json(job_ids).dump(), with_samples)) {
    CandidateResultRecord r;
    r.adapter_id = Str(row, "adapter_id");
    r.adapter_name = Str(row, "adapter_name");
    r.loss = Double(row, "loss");
    r.perplexity = Double(row, "perplexity");
    r.examples = Int(row, "examples");
    r.tokens = Int(row, "tokens");
    r.label_tokens = Int(row, "label_tokens");
    r.samples = SamplesFromJson(Json(row, "samples"));
    r.generation_tokens_per_second = Double(row, "generation_tokens_per_second");
    out[Str(row, "job_id")].push_back(std::move(r));
  }
  return out;
}

}  // namespace tuneforge
