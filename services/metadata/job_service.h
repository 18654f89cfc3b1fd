// Fine-tuning jobs: Start validates every reference and setting and stores the resolved settings; the worker side
// leases jobs to trainers, fenced by attempt number, and records their heartbeats, checkpoints and results.
#ifndef TUNEFORGE_SERVICES_METADATA_JOB_SERVICE_H_
#define TUNEFORGE_SERVICES_METADATA_JOB_SERVICE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "services/metadata/adapter_records.h"
#include "services/metadata/dataset_records.h"
#include "services/metadata/evaluation_records.h"
#include "services/metadata/job_records.h"
#include "services/metadata/job_repository.h"
#include "services/metadata/model_records.h"
#include "services/metadata/prompt_records.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct StartJobInput {
  std::string name;
  std::string description;
  std::string model;
  std::string model_revision_id;
  std::string dataset;
  std::string dataset_revision_id;
  std::string prompt;
  std::vector<std::string> configs;
  nlohmann::json lora = nlohmann::json::object();  // overrides
  nlohmann::json training = nlohmann::json::object();
  std::string adapter_name;
  int max_attempts = 0;  // 0: default 3
};

// What a job reads, as a request names them: model (id or name) and revision (empty: the latest), the same for the
// dataset, and a prompt of that dataset.
struct JobInputRefs {
  std::string model;
  std::string model_revision_id;
  std::string dataset;
  std::string dataset_revision_id;
  std::string prompt;
};

// The records they name.
struct JobInputs {
  ModelRecord model;
  ModelRevisionRecord model_revision;
  DatasetRecord dataset;
  DatasetRevisionRecord dataset_revision;
  PromptRecord prompt;
};

// INVALID_ARGUMENT naming the request field whose reference or revision id is malformed.
absl::Status CheckJobInputRefs(const JobInputRefs& refs);
// NOT_FOUND naming what does not exist (or a revision of another model or dataset), FAILED_PRECONDITION for a model or
// dataset without a revision, INVALID_ARGUMENT for a prompt of another dataset.
absl::StatusOr<JobInputs> ResolveJobInputs(Tx& tx, const JobInputRefs& refs);

struct ListJobsInput {
  int page_size = 0;
  std::string page_token;
  std::vector<std::string> states;
  std::string model;
  std::vector<std::string> kinds;  // empty: every kind
};

struct JobPage {
  std::vector<JobRecord> jobs;
  std::string next_page_token;
};

// Everything a trainer needs to run a leased job: the model always; dataset and prompt for a fine-tuning or
// evaluation job; the export and its adapter for an export job; the adapters to score, in order, for an evaluation.
struct LeasedJob {
  JobRecord job;
  ModelRecord model;
  ModelRevisionRecord model_revision;
  DatasetRecord dataset;
  DatasetRevisionRecord dataset_revision;
  PromptRecord prompt;
  ModelExportRecord export_record;
  AdapterRecord adapter;
  std::vector<AdapterRecord> evaluated_adapters;
};

// A trainer's report that its attempt finished.
struct CompleteJobInput {
  std::string job_id;
  int attempt = 0;
  std::string worker_id;
  std::string output_dir;  // must be the job's own
  nlohmann::json progress = nlohmann::json::object();
  nlohmann::json metrics = nlohmann::json::object();
  // Evaluation jobs: the base first, then each of the job's adapters in order.
  std::vector<CandidateResultRecord> evaluation_results;
};

// What CompleteJob did: the adapter a fine-tuning job registered, or where an export went.
struct CompletedJob {
  std::string adapter_id;
  std::string export_destination;
  std::string exported_model_id;
};

// Where a finished export went.
struct PublishedExport {
  std::string destination;
  std::string exported_model_id;  // merged exports
  std::string exported_model_revision_id;
  std::string exported_model_name;
};

// Publishes a finished export job's output (ExportService::Publish).
using ExportPublisher = std::function<absl::StatusOr<PublishedExport>(const JobRecord&, const ModelExportRecord&)>;

struct HeartbeatInput {
  std::string job_id;
  int attempt = 0;
  std::string worker_id;
  bool has_progress = false;
  nlohmann::json progress = nlohmann::json::object();
  nlohmann::json metrics = nlohmann::json::object();
  // Every report since the last heartbeat (progress, metrics), oldest first; empty: just `progress` / `metrics`.
  std::vector<std::pair<nlohmann::json, nlohmann::json>> updates;
  std::vector<std::pair<std::string, std::string>> logs;  // (level, message)
  std::vector<CheckpointRecord> checkpoints;
};

struct HeartbeatResult {
  absl::Time lease_deadline;
  bool cancel_requested = false;
};

struct FailJobInput {
  std::string job_id;
  int attempt = 0;
  std::string worker_id;
  std::string code;
  std::string message;
  bool retryable = false;
  bool cancelled = false;
};

// What CompleteJob keeps of an evaluation's samples: this many per candidate, each text cut to this many bytes.
inline constexpr size_t kMaxEvaluationSamples = 100;
inline constexpr size_t kMaxEvaluationText = 64 << 10;

class JobService {
 public:
  // Jobs' adapters and checkpoints go under <artifacts_root>/jobs/<id>/. A lease lasts lease_seconds from the
  // last heartbeat.
  JobService(Store& store, std::string artifacts_root, double lease_seconds);

  absl::StatusOr<JobRecord> StartJob(const StartJobInput& input);
  // By id or name. `kind` empty: a job of any kind (FineTuningJobs serves them all); otherwise jobs of other kinds are
  // NOT_FOUND, and messages name the RPCs of that kind's service (EvaluationJobs).
  absl::StatusOr<JobRecord> GetJob(const std::string& ref, const std::string& kind = "");
  absl::StatusOr<JobPage> ListJobs(const ListJobsInput& input);
  absl::StatusOr<JobRecord> CancelJob(const std::string& ref, const std::string& kind = "");
  absl::Status RemoveJob(const std::string& ref, const std::string& kind = "");
  absl::StatusOr<std::vector<CheckpointRecord>> ListCheckpoints(const std::string& ref);
  absl::StatusOr<std::vector<JobEventRecord>> Events(const std::string& job_id, int64_t after_sequence, int limit);

  // Ends jobs whose lease expired without attempts left (FAILED) or while cancelling (CANCELLED), then leases the
  // oldest waiting job. nullopt when none waits.
  absl::StatusOr<std::optional<LeasedJob>> LeaseJob(const std::string& worker_id);
  absl::StatusOr<HeartbeatResult> Heartbeat(const HeartbeatInput& input);
  // A fine-tuning job: registers the adapter in output_dir (checked against the base model). An export job:
  // publishes output_dir through the export publisher. An evaluation job: stores its results (INVALID_ARGUMENT,
  // and the job unchanged, when they are not one per candidate in order, or hold a number that is negative or not
  // finite; samples beyond kMaxEvaluationSamples and text beyond kMaxEvaluationText are cut). Then ends the job
  // SUCCEEDED; a publishing error ends it FAILED with that error, which is also returned.
  absl::StatusOr<CompletedJob> CompleteJob(const CompleteJobInput& input);
  // Export jobs cannot complete until this is set (ExportService::Publish, wired by the server).
  void SetExportPublisher(ExportPublisher publisher) { publish_export_ = std::move(publisher); }
  absl::StatusOr<std::string> FailJob(const FailJobInput& input);

  double lease_seconds() const { return lease_seconds_; }

  // For the metrics endpoint: jobs per state (one count in the database; every state present, 0 when none), and
  // how many leases expired since start (a job taken back from a trainer that stopped reporting: handed to another
  // trainer, or ended FAILED / CANCELLED when it had no attempts left or was being cancelled).
  absl::StatusOr<std::map<std::string, int64_t>> CountJobsByState();
  int64_t lease_expiries() const { return lease_expiries_.load(); }

 private:
  absl::StatusOr<JobRecord> FindJob(Tx& tx, const std::string& ref, const std::string& kind = "");
  // The job locked, when `attempt` of `worker_id` still owns it; FAILED_PRECONDITION otherwise.
  absl::StatusOr<JobRecord> LockOwned(Tx& tx, const std::string& job_id, int attempt, const std::string& worker_id);
  // Returns how many jobs it ended.
  absl::StatusOr<int> SweepExpired(Tx& tx);
  // CompleteJob of an evaluation job: checks and stores its results, ends it SUCCEEDED.
  absl::Status RecordEvaluation(Tx& tx, JobRecord job, const CompleteJobInput& in);
  // Ends a job that was just leased FAILED instead (FAILED_PRECONDITION: `message`), as no trainer may run it.
  void EndBeforeStart(Tx& tx, JobRecord* job, const std::string& message);

  Store& store_;
  std::string artifacts_root_;
  double lease_seconds_;
  JobRepository jobs_;
  std::atomic<int64_t> lease_expiries_{0};
  ExportPublisher publish_export_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_JOB_SERVICE_H_
