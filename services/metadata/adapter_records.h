// Domain records of the Adapters resource.
#ifndef TUNEFORGE_SERVICES_METADATA_ADAPTER_RECORDS_H_
#define TUNEFORGE_SERVICES_METADATA_ADAPTER_RECORDS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "services/metadata/records.h"

namespace tuneforge {

struct AdapterRecord {
  std::string id;
  std::string name;
  std::string description;
  std::string source_type;  // "huggingface" | "local" | "trained"
  std::string source;
  std::string commit_sha;
  std::string model_id;
  std::string model_revision_id;
  std::string job_id;
  std::string peft_type;
  int rank = 0;
  double alpha = 0;
  std::vector<std::string> target_modules;
  bool use_rslora = false;
  std::string fingerprint;
  std::vector<FileRecord> files;
  absl::Time create_time;
  absl::Time update_time;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_ADAPTER_RECORDS_H_
