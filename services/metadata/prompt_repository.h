// SQL for the Prompts resource: one method per statement in sql/prompt_*.sql.
#ifndef TUNEFORGE_SERVICES_METADATA_PROMPT_REPOSITORY_H_
#define TUNEFORGE_SERVICES_METADATA_PROMPT_REPOSITORY_H_

#include <optional>
#include <string>
#include <vector>

#include "services/metadata/prompt_records.h"
#include "absl/status/statusor.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct PromptListFilter {
  std::string after_name;  // empty: first page
  std::string name_prefix;
  std::string dataset_id;  // empty: any; else only prompts whose latest revision uses this dataset
  int limit = 50;
};

class PromptRepository;

// The prompt a request names: a revision id, or a name (its latest revision); NOT_FOUND otherwise.
absl::StatusOr<PromptRecord> FindPromptByRef(Tx& tx, const std::string& ref);

class PromptRepository {
 public:
  std::optional<PromptRecord> GetById(Tx& tx, const std::string& id);
  std::optional<PromptRecord> GetLatest(Tx& tx, const std::string& name);
  std::optional<PromptRecord> Find(Tx& tx, const std::string& name, const std::string& fingerprint);
  // Held until the transaction ends.
  void LockName(Tx& tx, const std::string& name);
  std::string Insert(Tx& tx, const PromptRecord& prompt);
  std::vector<PromptRecord> List(Tx& tx, const PromptListFilter& filter);
  void DeleteByName(Tx& tx, const std::string& name);
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_PROMPT_REPOSITORY_H_
