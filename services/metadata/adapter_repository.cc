// Adapters repository: runs sql/adapter_*.sql and maps rows to records. libpqxx errors propagate to
// Store::InTransaction, which rolls back and turns them into a status.
#include "services/metadata/adapter_repository.h"

#include "services/metadata/model_repository.h"
#include "services/metadata/store_internal.h"

namespace tuneforge {

namespace {

AdapterRecord AdapterFromRow(const pqxx::row& row) {
  AdapterRecord a;
  a.id = Str(row, "id");
  a.name = Str(row, "name");
  a.description = Str(row, "description");
  a.source_type = Str(row, "source_type");
  a.source = Str(row, "source");
  a.commit_sha = Str(row, "commit_sha");
  a.model_id = Str(row, "model_id");
  a.model_revision_id = Str(row, "model_revision_id");
  a.job_id = Str(row, "job_id");
  a.peft_type = Str(row, "peft_type");
  a.rank = static_cast<int>(Int(row, "rank"));
  a.alpha = Double(row, "alpha");
  const nlohmann::json modules = Json(row, "target_modules");
  if (modules.is_array()) {
    for (const auto& m : modules) {
      if (m.is_string()) a.target_modules.push_back(m.get<std::string>());
    }
  }
  a.use_rslora = Bool(row, "use_rslora");
  a.fingerprint = Str(row, "fingerprint");
  a.files = FilesFromJson(Str(row, "files"));
  a.create_time = Micros(row, "create_us");
  a.update_time = Micros(row, "update_us");
  return a;
}

std::optional<AdapterRecord> FirstAdapter(const pqxx::result& result) {
  if (result.empty()) return std::nullopt;
  return AdapterFromRow(result[0]);
}

}  // namespace

std::optional<AdapterRecord> AdapterRepository::GetById(Tx& tx, const std::string& id) {
  return FirstAdapter(tx.work().exec_prepared("adapter_get_by_id", id));
}

std::optional<AdapterRecord> AdapterRepository::GetByName(Tx& tx, const std::string& name) {
  return FirstAdapter(tx.work().exec_prepared("adapter_get_by_name", name));
}

std::optional<AdapterRecord> AdapterRepository::GetBySource(Tx& tx, const std::string& source_type,
                                                           const std::string& source, const std::string& fingerprint) {
  return FirstAdapter(tx.work().exec_prepared("adapter_get_by_source", source_type, source, fingerprint));
}

std::string AdapterRepository::Insert(Tx& tx, const AdapterRecord& a) {
  return tx.work()
      .exec_prepared1("adapter_insert", a.name, a.description, a.source_type, a.source, a.commit_sha,
                      a.model_revision_id, NullIfEmpty(a.job_id), a.peft_type, a.rank, a.alpha,
                      nlohmann::json(a.target_modules).dump(), a.use_rslora, a.fingerprint, FilesToJson(a.files))["id"]
      .as<std::string>();
}

std::vector<AdapterRecord> AdapterRepository::List(Tx& tx, const AdapterListFilter& f) {
  std::vector<AdapterRecord> out;
  for (const auto& row : tx.work().exec_prepared("adapter_list", NullIfEmpty(f.after_name), NullIfEmpty(f.name_prefix),
                                                 NullIfEmpty(f.model_id), NullIfEmpty(f.source_type), f.limit)) {
    out.push_back(AdapterFromRow(row));
  }
  return out;
}

std::vector<DependentRecord> AdapterRepository::Dependents(Tx& tx, const std::string& adapter_id) {
  std::vector<DependentRecord> out;
  for (const auto& row : tx.work().exec_prepared("adapter_dependents", adapter_id)) {
    out.push_back({Str(row, "kind"), Str(row, "name"), Str(row, "id")});
  }
  return out;
}

void AdapterRepository::DeleteExports(Tx& tx, const std::string& adapter_id) {
  tx.work().exec_prepared("adapter_delete_exports", adapter_id);
}

void AdapterRepository::Delete(Tx& tx, const std::string& adapter_id) {
  tx.work().exec_prepared("adapter_delete", adapter_id);
}

}  // namespace tuneforge
