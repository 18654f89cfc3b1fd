// Domain records of fine-tuning jobs, shared by their repository, service and handlers. Progress and metrics are
// JSON objects in the field names of tuneforge.v1.JobProgress / JobMetrics (lowerCamelCase, as proto JSON).
#ifndef TUNEFORGE_SERVICES_METADATA_JOB_RECORDS_H_
#define TUNEFORGE_SERVICES_METADATA_JOB_RECORDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace tuneforge {

// States as stored: QUEUED, RUNNING, CANCELLING, SUCCEEDED, FAILED, CANCELLED.
bool IsFinalJobState(const std::string& state);

// Kinds as stored. A fine-tuning job trains an adapter from a dataset and prompt; an export job merges an adapter
// into its base model (or copies it) and registers the result; an evaluation job scores a base model revision and
// adapters of it on a dataset split (its results: evaluation_records.h).
inline constexpr char kJobKindFineTune[] = "fine_tune";
inline constexpr char kJobKindExport[] = "export";
inline constexpr char kJobKindEvaluation[] = "evaluation";

struct JobRecord {
  std::string id;
  std::string name;
  std::string description;
  std::string state;
  std::string model_id;
  std::string model_revision_id;
  std::string dataset_id;
  std::string dataset_revision_id;
  std::string prompt_id;
  nlohmann::json config_ids = nlohmann::json::array();
  // Fine-tuning: {"lora": {...}, "training": {...}}; export: {"export": {...}}; evaluation: {"evaluation": {...},
  // "generation": {...}}.
  nlohmann::json settings = nlohmann::json::object();
  int attempts = 0;
  int max_attempts = 3;
  std::string worker_id;
  bool cancel_requested = false;
  nlohmann::json progress = nlohmann::json::object();
  nlohmann::json metrics = nlohmann::json::object();
  std::string error_code;
  std::string error_message;
  std::string adapter_id;
  std::string adapter_name;
  std::string output_dir;
  std::string checkpoint_dir;
  int64_t last_sequence = 0;
  absl::Time create_time, update_time, start_time, end_time, lease_expires;  // InfinitePast when unset
  std::string kind = kJobKindFineTune;
  std::string export_id;  // export jobs: the model_exports row it carries out
};

struct JobEventRecord {
  int64_t sequence = 0;
  absl::Time time;
  std::string kind;   // state | progress | log | checkpoint
  std::string level;  // info | warning | error
  std::string message;
  std::string state;
  nlohmann::json progress;  // null when absent
  nlohmann::json metrics;
};

struct CheckpointRecord {
  std::string id;
  std::string job_id;
  int64_t step = 0;
  int epoch = 0;
  std::string path;
  double train_loss = 0;
  int attempt = 0;
  absl::Time create_time;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_JOB_RECORDS_H_
