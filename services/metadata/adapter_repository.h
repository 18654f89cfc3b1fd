// SQL for the Adapters resource: one method per statement in sql/adapter_*.sql.
#ifndef TUNEFORGE_SERVICES_METADATA_ADAPTER_REPOSITORY_H_
#define TUNEFORGE_SERVICES_METADATA_ADAPTER_REPOSITORY_H_

#include <optional>
#include <string>
#include <vector>

#include "services/metadata/adapter_records.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct AdapterListFilter {
  std::string after_name;   // empty: first page
  std::string name_prefix;  // empty: any
  std::string model_id;     // empty: any
  std::string source_type;  // empty: any
  int limit = 50;
};

// Every read fills AdapterRecord.model_id from the adapter's model revision.
class AdapterRepository {
 public:
  std::optional<AdapterRecord> GetById(Tx& tx, const std::string& id);
  std::optional<AdapterRecord> GetByName(Tx& tx, const std::string& name);
  // The adapter with this exact source and content, if any (a UNIQUE key of the table).
  std::optional<AdapterRecord> GetBySource(Tx& tx, const std::string& source_type, const std::string& source,
                                           const std::string& fingerprint);
  // Returns the new id.
  std::string Insert(Tx& tx, const AdapterRecord& adapter);
  std::vector<AdapterRecord> List(Tx& tx, const AdapterListFilter& filter);
  // Export requests that use the adapter (kind "export", name = destination path).
  std::vector<DependentRecord> Dependents(Tx& tx, const std::string& adapter_id);
  void DeleteExports(Tx& tx, const std::string& adapter_id);
  void Delete(Tx& tx, const std::string& adapter_id);
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_ADAPTER_REPOSITORY_H_
