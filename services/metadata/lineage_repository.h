// SQL for lineage: one method per statement in sql/lineage_*.sql.
#ifndef TUNEFORGE_SERVICES_METADATA_LINEAGE_REPOSITORY_H_
#define TUNEFORGE_SERVICES_METADATA_LINEAGE_REPOSITORY_H_

#include <optional>
#include <string>
#include <vector>

#include "services/metadata/store.h"

namespace tuneforge {

// A record in the lineage graph. Kinds as the SQL names them: model_revision, dataset_revision, prompt, config,
// job, adapter, export.
struct LineageRecord {
  std::string kind;
  std::string id;
  std::string name;
  std::string parent_id;
  int revision_number = 0;
  std::string state;
  std::string detail;
};

// A neighbour of a record and how they are related.
struct LineageLink {
  std::string kind;
  std::string id;
  std::string relation;
};

class LineageRepository {
 public:
  std::vector<LineageLink> Upstream(Tx& tx, const std::string& kind, const std::string& id);
  std::vector<LineageLink> Downstream(Tx& tx, const std::string& kind, const std::string& id);
  // nullopt when the record does not exist.
  std::optional<LineageRecord> Node(Tx& tx, const std::string& kind, const std::string& id);
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_LINEAGE_REPOSITORY_H_
