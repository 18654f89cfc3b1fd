// Models repository: runs sql/model_*.sql and maps rows to records. libpqxx errors propagate to
// Store::InTransaction, which rolls back and turns them into a status.
#include "services/metadata/model_repository.h"

#include "absl/strings/str_cat.h"
#include "services/metadata/request_checks.h"
#include "services/metadata/store_internal.h"

namespace tuneforge {

namespace {

std::vector<int64_t> IdsFromJson(const nlohmann::json& j) {
  std::vector<int64_t> ids;
  if (j.is_array()) {
    for (const auto& v : j) ids.push_back(v.get<int64_t>());
  }
  return ids;
}

ModelRevisionRecord RevisionFromRow(const pqxx::row& row) {
  ModelRevisionRecord r;
  r.id = Str(row, "r_id");
  r.model_id = Str(row, "r_model_id");
  r.revision_number = static_cast<int>(Int(row, "r_revision_number"));
  r.requested_revision = Str(row, "r_requested_revision");
  r.commit_sha = Str(row, "r_commit_sha");
  r.fingerprint = Str(row, "r_fingerprint");
  r.family = Str(row, "r_family");
  r.architecture = Str(row, "r_architecture");
  r.files = FilesFromJson(Str(row, "r_files"));
  r.bos_token_ids = IdsFromJson(Json(row, "r_bos_token_ids"));
  r.eos_token_ids = IdsFromJson(Json(row, "r_eos_token_ids"));
  r.parameter_count = Int(row, "r_parameter_count");
  r.config_json = Str(row, "r_config_json");
  r.create_time = Micros(row, "r_create_us");
  return r;
}

ModelRecord ModelFromRow(const pqxx::row& row) {
  ModelRecord m;
  m.id = Str(row, "id");
  m.name = Str(row, "name");
  m.description = Str(row, "description");
  m.source_type = Str(row, "source_type");
  m.source = Str(row, "source");
  m.family = Str(row, "family");
  m.revision_count = static_cast<int>(Int(row, "revision_count"));
  m.create_time = Micros(row, "create_us");
  m.update_time = Micros(row, "update_us");
  if (!row["r_id"].is_null()) m.latest_revision = RevisionFromRow(row);
  return m;
}

std::optional<ModelRecord> FirstModel(const pqxx::result& result) {
  if (result.empty()) return std::nullopt;
  return ModelFromRow(result[0]);
}

}  // namespace

std::vector<FileRecord> FilesFromJson(const std::string& json_text) {
  std::vector<FileRecord> files;
  if (json_text.empty()) return files;
  for (const auto& f : nlohmann::json::parse(json_text)) {
    files.push_back({f.value("path", ""), f.value("size", int64_t{0}), f.value("sha256", "")});
  }
  return files;
}

std::string FilesToJson(const std::vector<FileRecord>& files) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& f : files) out.push_back({{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}});
  return out.dump();
}

std::optional<ModelRecord> ModelRepository::GetById(Tx& tx, const std::string& id) {
  return FirstModel(tx.work().exec_prepared("model_get_by_id", id));
}

std::optional<ModelRecord> ModelRepository::GetByName(Tx& tx, const std::string& name) {
  return FirstModel(tx.work().exec_prepared("model_get_by_name", name));
}

std::optional<ModelRecord> ModelRepository::GetBySource(Tx& tx, const std::string& source_type,
                                                       const std::string& source) {
  return FirstModel(tx.work().exec_prepared("model_get_by_source", source_type, source));
}

void ModelRepository::Lock(Tx& tx, const std::string& model_id) { tx.work().exec_prepared("model_lock", model_id); }

std::string ModelRepository::Insert(Tx& tx, const ModelRecord& m) {
  return tx.work()
      .exec_prepared1("model_insert", m.name, m.description, m.source_type, m.source, m.family)["id"]
      .as<std::string>();
}

void ModelRepository::Touch(Tx& tx, const std::string& model_id) { tx.work().exec_prepared("model_touch", model_id); }

std::string ModelRepository::InsertRevision(Tx& tx, const ModelRevisionRecord& r) {
  return tx.work()
      .exec_prepared1("model_revision_insert", r.model_id, r.requested_revision, r.commit_sha, r.fingerprint,
                      r.family, r.architecture, FilesToJson(r.files), nlohmann::json(r.bos_token_ids).dump(),
                      nlohmann::json(r.eos_token_ids).dump(), r.parameter_count, r.config_json)["id"]
      .as<std::string>();
}

std::optional<ModelRevisionRecord> ModelRepository::GetRevision(Tx& tx, const std::string& revision_id) {
  pqxx::result result = tx.work().exec_prepared("model_revision_get", revision_id);
  if (result.empty()) return std::nullopt;
  return RevisionFromRow(result[0]);
}

std::optional<ModelRevisionRecord> ModelRepository::FindRevision(Tx& tx, const std::string& model_id,
                                                                const std::string& fingerprint) {
  pqxx::result result = tx.work().exec_prepared("model_revision_find", model_id, fingerprint);
  if (result.empty()) return std::nullopt;
  return RevisionFromRow(result[0]);
}

std::vector<ModelRevisionRecord> ModelRepository::ListRevisions(Tx& tx, const std::string& model_id, int below,
                                                                int limit) {
  std::optional<int> start;
  if (below > 0) start = below;
  std::vector<ModelRevisionRecord> out;
  for (const auto& row : tx.work().exec_prepared("model_revision_list", model_id, start, limit)) {
    out.push_back(RevisionFromRow(row));
  }
  return out;
}

std::vector<ModelRecord> ModelRepository::List(Tx& tx, const ModelListFilter& f) {
  std::vector<ModelRecord> out;
  for (const auto& row : tx.work().exec_prepared("model_list", NullIfEmpty(f.after_name), NullIfEmpty(f.name_prefix),
                                                 NullIfEmpty(f.family), NullIfEmpty(f.source_type), f.limit)) {
    out.push_back(ModelFromRow(row));
  }
  return out;
}

std::vector<DependentRecord> ModelRepository::Dependents(Tx& tx, const std::string& model_id) {
  std::vector<DependentRecord> out;
  for (const auto& row : tx.work().exec_prepared("model_dependents", model_id)) {
    out.push_back({Str(row, "kind"), Str(row, "name"), Str(row, "id")});
  }
  return out;
}

void ModelRepository::DeleteExports(Tx& tx, const std::string& id) { tx.work().exec_prepared("model_delete_exports", id); }
void ModelRepository::DeleteAdapters(Tx& tx, const std::string& id) { tx.work().exec_prepared("model_delete_adapters", id); }
void ModelRepository::DeleteRevisions(Tx& tx, const std::string& id) {
  tx.work().exec_prepared("model_delete_revisions", id);
}
void ModelRepository::Delete(Tx& tx, const std::string& id) { tx.work().exec_prepared("model_delete", id); }

ModelExportRecord ModelRepository::InsertExport(Tx& tx, const ModelExportRecord& e) {
  pqxx::row row = tx.work().exec_prepared1("model_export_insert", e.model_revision_id, e.adapter_id, e.type,
                                           e.destination_path, e.exported_model_name);
  ModelExportRecord out = e;
  out.id = Str(row, "id");
  out.state = Str(row, "state");
  out.create_time = Micros(row, "create_us");
  return out;
}

std::optional<std::string> ModelRepository::ExportByDestination(Tx& tx, const std::string& destination_path) {
  pqxx::result result = tx.work().exec_prepared("model_export_by_destination", destination_path);
  if (result.empty()) return std::nullopt;
  return Str(result[0], "id");
}


absl::StatusOr<ModelRecord> FindModelByRef(Tx& tx, const std::string& ref) {
  ModelRepository models;
  std::optional<ModelRecord> model = IsUuid(ref) ? models.GetById(tx, ref) : models.GetByName(tx, ref);
  if (!model) {
    return absl::NotFoundError(absl::StrCat("model '", ref, "' not found; ListModels shows the registered models"));
  }
  return *model;
}

}  // namespace tuneforge
