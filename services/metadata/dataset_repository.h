// SQL for the Datasets resource: one method per statement in sql/dataset_*.sql.
#ifndef TUNEFORGE_SERVICES_METADATA_DATASET_REPOSITORY_H_
#define TUNEFORGE_SERVICES_METADATA_DATASET_REPOSITORY_H_

#include <optional>
#include <string>
#include <vector>

#include "services/metadata/dataset_records.h"
#include "absl/status/statusor.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct DatasetListFilter {
  std::string after_name;  // empty: first page
  std::string name_prefix;
  std::string source_type;  // empty: any
  int limit = 50;
};

class DatasetRepository;

// The dataset a request names by id or name; NOT_FOUND saying where to look otherwise.
absl::StatusOr<DatasetRecord> FindDatasetByRef(Tx& tx, const std::string& ref);

class DatasetRepository {
 public:
  std::optional<DatasetRecord> GetById(Tx& tx, const std::string& id);
  std::optional<DatasetRecord> GetByName(Tx& tx, const std::string& name);
  std::optional<DatasetRecord> GetBySource(Tx& tx, const std::string& source_type, const std::string& source,
                                           const std::string& config);
  // Records the config of a Hub dataset that has none recorded (added before configs were).
  void SetConfig(Tx& tx, const std::string& dataset_id, const std::string& config);
  void Lock(Tx& tx, const std::string& dataset_id);
  std::string Insert(Tx& tx, const DatasetRecord& dataset);
  void Touch(Tx& tx, const std::string& dataset_id);
  // `preview` maps split name -> its first rows.
  std::string InsertRevision(Tx& tx, const DatasetRevisionRecord& revision, const nlohmann::json& preview);
  std::optional<DatasetRevisionRecord> GetRevision(Tx& tx, const std::string& revision_id);
  std::optional<DatasetRevisionRecord> FindRevision(Tx& tx, const std::string& dataset_id,
                                                    const std::string& fingerprint);
  // Newest first; `below` = 0 starts at the newest.
  std::vector<DatasetRevisionRecord> ListRevisions(Tx& tx, const std::string& dataset_id, int below, int limit);
  // The stored preview (split name -> rows); an empty object when the revision has none.
  nlohmann::json Preview(Tx& tx, const std::string& revision_id);
  std::vector<DatasetRecord> List(Tx& tx, const DatasetListFilter& filter);
  std::vector<DependentRecord> Dependents(Tx& tx, const std::string& dataset_id);
  void DeletePrompts(Tx& tx, const std::string& dataset_id);
  void DeleteRevisions(Tx& tx, const std::string& dataset_id);
  void Delete(Tx& tx, const std::string& dataset_id);
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_DATASET_REPOSITORY_H_
