// Domain records of the Models resource, shared by its repository, service and handler.
#ifndef TUNEFORGE_SERVICES_METADATA_MODEL_RECORDS_H_
#define TUNEFORGE_SERVICES_METADATA_MODEL_RECORDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "services/metadata/records.h"

namespace tuneforge {

struct ModelRevisionRecord {
  std::string id;
  std::string model_id;
  int revision_number = 0;
  std::string requested_revision;
  std::string commit_sha;
  std::string fingerprint;
  std::string family;
  std::string architecture;
  std::vector<FileRecord> files;
  std::vector<int64_t> bos_token_ids;
  std::vector<int64_t> eos_token_ids;
  int64_t parameter_count = 0;
  std::string config_json;
  absl::Time create_time;
};

struct ModelRecord {
  std::string id;
  std::string name;
  std::string description;
  std::string source_type;  // "huggingface" | "local" | "trained"
  std::string source;
  std::string family;
  int revision_count = 0;
  std::optional<ModelRevisionRecord> latest_revision;
  absl::Time create_time;
  absl::Time update_time;
};

struct ModelExportRecord {
  std::string id;
  std::string model_id;  // of the base revision
  std::string model_revision_id;
  std::string adapter_id;
  std::string type;  // "merged" | "adapter"
  std::string destination_path;
  std::string exported_model_name;
  std::string job_id;             // empty once the job is removed
  std::string dtype;              // "fp32" | "bf16" | "fp16"; empty: the base model's
  int64_t max_shard_size = 0;     // bytes; 0: the default
  bool overwrite = false;
  std::string exported_model_id;  // merged exports that succeeded
  std::string exported_model_revision_id;
  std::string state;  // queued | running | cancelling | succeeded | failed | cancelled (its job's, lower case)
  std::string error_code, error_message;  // its job's
  absl::Time create_time;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_MODEL_RECORDS_H_
