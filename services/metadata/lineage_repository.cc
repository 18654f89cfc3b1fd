// Lineage repository: runs sql/lineage_*.sql and maps rows to records.
#include "services/metadata/lineage_repository.h"

#include "services/metadata/store_internal.h"

namespace tuneforge {

namespace {

std::vector<LineageLink> Links(const pqxx::result& result) {
  std::vector<LineageLink> out;
  for (const pqxx::row& row : result) out.push_back({Str(row, "kind"), Str(row, "id"), Str(row, "relation")});
  return out;
}

}  // namespace

std::vector<LineageLink> LineageRepository::Upstream(Tx& tx, const std::string& kind, const std::string& id) {
  return Links(tx.work().exec_prepared("lineage_upstream", kind, id));
}

std::vector<LineageLink> LineageRepository::Downstream(Tx& tx, const std::string& kind, const std::string& id) {
  return Links(tx.work().exec_prepared("lineage_downstream", kind, id));
}

std::optional<LineageRecord> LineageRepository::Node(Tx& tx, const std::string& kind, const std::string& id) {
  pqxx::result result = tx.work().exec_prepared("lineage_node", kind, id);
  if (result.empty()) return std::nullopt;
  const pqxx::row& row = result[0];
  LineageRecord r;
  r.kind = kind;
  r.id = id;
  r.name = Str(row, "name");
  r.parent_id = Str(row, "parent_id");
  r.revision_number = static_cast<int>(Int(row, "revision_number"));
  r.state = Str(row, "state");
  r.detail = Str(row, "detail");
  return r;
}

}  // namespace tuneforge
