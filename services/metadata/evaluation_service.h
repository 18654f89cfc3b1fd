// Rules of evaluation jobs: StartEvaluationJob checks the request and queues a job (kind "evaluation") that a trainer
// leases like any other; Get and List show each job with its results, the base first and then each adapter. Cancel,
// Remove and Watch are the job service's, held to this kind. Knows neither gRPC nor SQL.
#ifndef TUNEFORGE_SERVICES_METADATA_EVALUATION_SERVICE_H_
#define TUNEFORGE_SERVICES_METADATA_EVALUATION_SERVICE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "services/metadata/evaluation_records.h"
#include "services/metadata/evaluation_repository.h"
#include "services/metadata/job_records.h"
#include "services/metadata/job_repository.h"
#include "services/metadata/job_service.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct StartEvaluationInput {
  std::string name;  // empty: eval-<model>-<dataset>-<time>
  std::string description;
  JobInputRefs inputs;                // model, dataset and prompt (and revisions) as for fine-tuning
  std::vector<std::string> adapters;  // ids or names, adapters of the model revision; may be empty
  std::string split;                  // "" (test) | "test" | "train"
  int max_examples = 0;               // 0: the whole split
  std::optional<int> num_samples;     // 0-kMaxEvaluationSamples; unset: 3
  nlohmann::json generation = nlohmann::json::object();  // generation config keys
  int max_seq_len = 0;                                   // 0: 2048
  int batch_size = 0;                                    // 0: 8
  std::string device;                                    // "": auto
  std::string dtype;                                     // "": fp32
  int max_attempts = 0;                                  // 0: 3
};

// A job with its results (empty until it SUCCEEDED).
struct EvaluationJobRecord {
  JobRecord job;
  std::vector<CandidateResultRecord> results;
};

struct EvaluationPage {
  std::vector<EvaluationJobRecord> jobs;
  std::string next_page_token;
};

// At most this many adapters besides the base in one evaluation.
inline constexpr int kMaxEvaluationAdapters = 16;

class EvaluationService {
 public:
  // Jobs write (nothing, but own a folder) under <artifacts_root>/jobs/<id>/evaluation.
  EvaluationService(Store& store, JobService& jobs, std::string artifacts_root);

  // Checks every field and reference, then records the QUEUED job with its resolved settings:
  // {"evaluation": {split, adapter_ids, max_examples, num_samples, max_seq_len, batch_size, device, dtype},
  //  "generation": {...}}.
  absl::StatusOr<EvaluationJobRecord> StartEvaluation(const StartEvaluationInput& input);
  absl::StatusOr<EvaluationJobRecord> GetEvaluation(const std::string& ref);
  // Results without their samples.
  absl::StatusOr<EvaluationPage> ListEvaluations(ListJobsInput input);
  absl::StatusOr<EvaluationJobRecord> CancelEvaluation(const std::string& ref);
  absl::Status RemoveEvaluation(const std::string& ref);

 private:
  // `jobs` with their results attached.
  absl::StatusOr<std::vector<EvaluationJobRecord>> WithResults(std::vector<JobRecord> jobs, bool with_samples);

  Store& store_;
  JobService& jobs_;
  std::string artifacts_root_;
  JobRepository job_repo_;
  EvaluationRepository results_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_EVALUATION_SERVICE_H_
