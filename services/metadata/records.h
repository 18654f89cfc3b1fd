// Record types shared by every resource of the metadata service.
#ifndef TUNEFORGE_SERVICES_METADATA_RECORDS_H_
#define TUNEFORGE_SERVICES_METADATA_RECORDS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace tuneforge {

// One file of a revision (relative path, bytes, sha256 hex or empty when the Hub does not publish it).
struct FileRecord {
  std::string path;
  int64_t size = 0;
  std::string sha256;
};

// Something that depends on a record and blocks its removal.
struct DependentRecord {
  std::string kind;  // "adapter", "export", "prompt", ...
  std::string name;
  std::string id;
};

// What an idempotent Add did (mirrors tuneforge.v1.AddOutcome).
enum class AddOutcome { kCreated, kNewRevision, kExisting };

// "adapter my-lora (id), export /data/out (id)" for messages.
std::string DescribeDependents(const std::vector<DependentRecord>& dependents, size_t max_listed = 10);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_RECORDS_H_
