// Lineage rules: resolve the record asked about, then walk the graph breadth first each way, bounded in depth and
// size. Knows neither gRPC nor SQL.
#ifndef TUNEFORGE_SERVICES_METADATA_LINEAGE_SERVICE_H_
#define TUNEFORGE_SERVICES_METADATA_LINEAGE_SERVICE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/metadata/lineage_repository.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct LineageInput {
  std::string kind;         // model_revision | dataset_revision | prompt | config | job | adapter | export
  std::string ref;          // id or name (revisions: of the model or dataset)
  std::string revision_id;  // model and dataset revisions; empty: the latest
  bool upstream = true, downstream = true;
  int max_depth = 0;  // 0: 10
};

struct LineageNodeAt {
  LineageRecord record;
  int depth = 0;
};

struct LineageEdgeRecord {
  std::string from_id, to_id, relation;
};

struct LineageGraph {
  LineageNodeAt root;
  std::vector<LineageNodeAt> upstream, downstream;  // by depth, then kind and name
  std::vector<LineageEdgeRecord> edges;
  bool truncated = false;
};

class LineageService {
 public:
  explicit LineageService(Store& store) : store_(store) {}

  absl::StatusOr<LineageGraph> GetLineage(const LineageInput& input);

 private:
  // The id of the record `input` names, or NOT_FOUND / INVALID_ARGUMENT naming the field.
  absl::StatusOr<std::string> Resolve(Tx& tx, const LineageInput& input);

  Store& store_;
  LineageRepository lineage_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_LINEAGE_SERVICE_H_
