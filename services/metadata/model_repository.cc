// Models repository: runs sql/model_*.sql and maps rows to records. libpqxx errors propagate to
// Store::InTransaction, which rolls back and turns them into a status.
#include "services/metadata/model_repository.h"

#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/metadata/request_checks.h"
#include "services/metadata/store_internal.h"

namespace tuneforge {

namespace {

using Column = pqxx::row::size_type;

// Reads the JSON that PostgreSQL prints for the jsonb file lists ('[{"path": "a", "size": 1, "sha256": "f0"}, ...]')
// and token id lists ('[1, 2]') in one pass. nlohmann's parser took about 4 us per file list, more than the rest of
// a row's mapping, and a page of models maps 50 of them; whatever this reader does not expect (other keys or value
// types, nesting) is left to nlohmann by the callers.
class JsonListScanner {
 public:
  explicit JsonListScanner(std::string_view text) : in_(text) {}

  bool ReadFiles(std::vector<FileRecord>* files) {
    if (!Consume('[')) return false;
    if (Consume(']')) return AtEnd();
    do {
      if (!Consume('{')) return false;
      FileRecord& f = files->emplace_back();
      if (!Consume('}')) {
        do {
          std::string key;
          if (!String(&key) || !Consume(':')) return false;
          const bool read = key == "path" ? String(&f.path) : key == "size" ? Integer(&f.size)
                            : key == "sha256" ? String(&f.sha256) : false;
          if (!read) return false;
        } while (Consume(','));
        if (!Consume('}')) return false;
      }
    } while (Consume(','));
    return Consume(']') && AtEnd();
  }

  bool ReadIntegers(std::vector<int64_t>* ids) {
    if (!Consume('[')) return false;
    if (Consume(']')) return AtEnd();
    do {
      if (!Integer(&ids->emplace_back())) return false;
    } while (Consume(','));
    return Consume(']') && AtEnd();
  }

 private:
  void SkipSpace() {
    while (pos_ < in_.size() && (in_[pos_] == ' ' || in_[pos_] == '\n' || in_[pos_] == '\t' || in_[pos_] == '\r')) ++pos_;
  }
  bool Consume(char c) {
    SkipSpace();
    if (pos_ >= in_.size() || in_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  bool AtEnd() {
    SkipSpace();
    return pos_ == in_.size();
  }
  bool String(std::string* out) {
    if (!Consume('"')) return false;
    const size_t start = pos_;
    const size_t end = in_.find('"', start);
    if (end == std::string_view::npos) return false;
    if (in_.substr(start, end - start).find('\\') == std::string_view::npos) {
      out->assign(in_.data() + start, end - start);
      pos_ = end + 1;
      return true;
    }
    // Escapes are rare in paths and digests: find the closing quote past them and let nlohmann decode the literal.
    while (pos_ < in_.size() && in_[pos_] != '"') pos_ += in_[pos_] == '\\' ? 2 : 1;
    if (pos_ >= in_.size()) return false;
    ++pos_;
    const nlohmann::json decoded =
        nlohmann::json::parse(in_.data() + start - 1, in_.data() + pos_, /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (!decoded.is_string()) return false;
    *out = decoded.get<std::string>();
    return true;
  }
  bool Integer(int64_t* out) {
    SkipSpace();
    const size_t start = pos_;
    if (pos_ < in_.size() && in_[pos_] == '-') ++pos_;
    while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') ++pos_;
    if (pos_ < in_.size() && (in_[pos_] == '.' || in_[pos_] == 'e' || in_[pos_] == 'E')) return false;
    return absl::SimpleAtoi(absl::string_view(in_.data() + start, pos_ - start), out);
  }

  std::string_view in_;
  size_t pos_ = 0;
};

std::vector<int64_t> IdsFromJson(const pqxx::field& field) {
  std::vector<int64_t> ids;
  if (field.is_null()) return ids;
  const std::string_view text(field.c_str(), field.size());
  if (JsonListScanner(text).ReadIntegers(&ids)) return ids;
  ids.clear();
  const nlohmann::json j = nlohmann::json::parse(text.begin(), text.end());
  if (j.is_array()) {
    for (const auto& v : j) ids.push_back(v.get<int64_t>());
  }
  return ids;
}

// Positions of the r_* revision columns in a result.
struct RevisionColumns {
  explicit RevisionColumns(const pqxx::result& result)
      : id(result.column_number("r_id")),
        model_id(result.column_number("r_model_id")),
        revision_number(result.column_number("r_revision_number")),
        requested_revision(result.column_number("r_requested_revision")),
        commit_sha(result.column_number("r_commit_sha")),
        fingerprint(result.column_number("r_fingerprint")),
        family(result.column_number("r_family")),
        architecture(result.column_number("r_architecture")),
        files(result.column_number("r_files")),
        bos_token_ids(result.column_number("r_bos_token_ids")),
        eos_token_ids(result.column_number("r_eos_token_ids")),
        parameter_count(result.column_number("r_parameter_count")),
        config_json(result.column_number("r_config_json")),
        create_us(result.column_number("r_create_us")) {}
  Column id, model_id, revision_number, requested_revision, commit_sha, fingerprint, family, architecture, files,
      bos_token_ids, eos_token_ids, parameter_count, config_json, create_us;
};

// Positions of a model's columns, and of its latest revision's.
struct ModelColumns {
  explicit ModelColumns(const pqxx::result& result)
      : id(result.column_number("id")),
        name(result.column_number("name")),
        description(result.column_number("description")),
        source_type(result.column_number("source_type")),
        source(result.column_number("source")),
        family(result.column_number("family")),
        revision_count(result.column_number("revision_count")),
        create_us(result.column_number("create_us")),
        update_us(result.column_number("update_us")),
        revision(result) {}
  Column id, name, description, source_type, source, family, revision_count, create_us, update_us;
  RevisionColumns revision;
};

ModelRevisionRecord RevisionFromRow(const pqxx::row& row, const RevisionColumns& c) {
  ModelRevisionRecord r;
  r.id = Str(row[c.id]);
  r.model_id = Str(row[c.model_id]);
  r.revision_number = static_cast<int>(Int(row[c.revision_number]));
  r.requested_revision = Str(row[c.requested_revision]);
  r.commit_sha = Str(row[c.commit_sha]);
  r.fingerprint = Str(row[c.fingerprint]);
  r.family = Str(row[c.family]);
  r.architecture = Str(row[c.architecture]);
  const pqxx::field files = row[c.files];
  if (!files.is_null()) r.files = FilesFromJson(std::string_view(files.c_str(), files.size()));
  r.bos_token_ids = IdsFromJson(row[c.bos_token_ids]);
  r.eos_token_ids = IdsFromJson(row[c.eos_token_ids]);
  r.parameter_count = Int(row[c.parameter_count]);
  r.config_json = Str(row[c.config_json]);
  r.create_time = Micros(row[c.create_us]);
  return r;
}

ModelRecord ModelFromRow(const pqxx::row& row, const ModelColumns& c) {
  ModelRecord m;
  m.id = Str(row[c.id]);
  m.name = Str(row[c.name]);
  m.description = Str(row[c.description]);
  m.source_type = Str(row[c.source_type]);
  m.source = Str(row[c.source]);
  m.family = Str(row[c.family]);
  m.revision_count = static_cast<int>(Int(row[c.revision_count]));
  m.create_time = Micros(row[c.create_us]);
  m.update_time = Micros(row[c.update_us]);
  if (!row[c.revision.id].is_null()) m.latest_revision = RevisionFromRow(row, c.revision);
  return m;
}

std::optional<ModelRecord> FirstModel(const pqxx::result& result) {
  if (result.empty()) return std::nullopt;
  return ModelFromRow(result[0], ModelColumns(result));
}

std::optional<ModelRevisionRecord> FirstRevision(const pqxx::result& result) {
  if (result.empty()) return std::nullopt;
  return RevisionFromRow(result[0], RevisionColumns(result));
}

}  // namespace

std::vector<FileRecord> FilesFromJson(std::string_view json_text) {
  std::vector<FileRecord> files;
  if (json_text.empty() || JsonListScanner(json_text).ReadFiles(&files)) return files;
  files.clear();
  for (const auto& f : nlohmann::json::parse(json_text.begin(), json_text.end())) {
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
  return FirstRevision(tx.work().exec_prepared("model_revision_get", revision_id));
}

std::optional<ModelRevisionRecord> ModelRepository::FindRevision(Tx& tx, const std::string& model_id,
                                                                const std::string& fingerprint) {
  return FirstRevision(tx.work().exec_prepared("model_revision_find", model_id, fingerprint));
}

std::vector<ModelRevisionRecord> ModelRepository::ListRevisions(Tx& tx, const std::string& model_id, int below,
                                                                int limit) {
  std::optional<int> start;
  if (below > 0) start = below;
  const pqxx::result result = tx.work().exec_prepared("model_revision_list", model_id, start, limit);
  const RevisionColumns columns(result);
  std::vector<ModelRevisionRecord> out;
  out.reserve(result.size());
  for (const auto& row : result) out.push_back(RevisionFromRow(row, columns));
  return out;
}

std::vector<ModelRecord> ModelRepository::List(Tx& tx, const ModelListFilter& f) {
  const pqxx::result result = tx.work().exec_prepared("model_list", NullIfEmpty(f.after_name),
                                                      NullIfEmpty(f.name_prefix), NullIfEmpty(f.family),
                                                      NullIfEmpty(f.source_type), f.limit);
  const ModelColumns columns(result);
  std::vector<ModelRecord> out;
  out.reserve(result.size());
  for (const auto& row : result) out.push_back(ModelFromRow(row, columns));
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

std::string ModelRepository::InsertExport(Tx& tx, const ModelExportRecord& e) {
  return Str(tx.work().exec_prepared1("model_export_insert", e.model_revision_id, e.adapter_id, e.type,
                                      e.destination_path, e.exported_model_name, NullIfEmpty(e.job_id), e.dtype,
                                      e.max_shard_size, e.overwrite),
             "id");
}

namespace {

ModelExportRecord ExportFromRow(const pqxx::row& row) {
  ModelExportRecord e;
  e.id = Str(row, "id");
  e.model_id = Str(row, "model_id");
  e.model_revision_id = Str(row, "model_revision_id");
  e.adapter_id = Str(row, "adapter_id");
  e.type = Str(row, "type");
  e.destination_path = Str(row, "destination_path");
  e.exported_model_name = Str(row, "exported_model_name");
  e.job_id = Str(row, "job_id");
  e.dtype = Str(row, "dtype");
  e.max_shard_size = Int(row, "max_shard_size");
  e.overwrite = Bool(row, "overwrite");
  e.exported_model_id = Str(row, "exported_model_id");
  e.exported_model_revision_id = Str(row, "exported_model_revision_id");
  e.state = Str(row, "state");
  e.error_code = Str(row, "error_code");
  e.error_message = Str(row, "error_message");
  e.create_time = Micros(row, "create_us");
  return e;
}

}  // namespace

std::optional<std::string> ModelRepository::ExportSucceededAt(Tx& tx, const std::string& destination_path) {
  pqxx::result result = tx.work().exec_prepared("model_export_succeeded_at", destination_path);
  if (result.empty()) return std::nullopt;
  return Str(result[0], "id");
}

std::optional<ModelExportRecord> ModelRepository::GetExport(Tx& tx, const std::string& id) {
  pqxx::result result = tx.work().exec_prepared("model_export_get", id);
  if (result.empty()) return std::nullopt;
  return ExportFromRow(result[0]);
}

std::vector<ModelExportRecord> ModelRepository::ListExports(Tx& tx, const std::string& model_id,
                                                            const std::string& adapter_id, int64_t after_create_us,
                                                            const std::string& after_id, int limit) {
  std::optional<int64_t> after_us;
  if (!after_id.empty()) after_us = after_create_us;
  std::vector<ModelExportRecord> out;
  for (const pqxx::row& row : tx.work().exec_prepared("model_export_list", NullIfEmpty(model_id),
                                                      NullIfEmpty(adapter_id), after_us, NullIfEmpty(after_id),
                                                      limit)) {
    out.push_back(ExportFromRow(row));
  }
  return out;
}

void ModelRepository::SetExportResult(Tx& tx, const std::string& id, const std::string& exported_model_id,
                                      const std::string& exported_model_revision_id, const std::string& state) {
  tx.work().exec_prepared("model_export_set_result", id, NullIfEmpty(exported_model_id),
                          NullIfEmpty(exported_model_revision_id), state);
}

void ModelRepository::SettleExport(Tx& tx, const std::string& job_id) {
  tx.work().exec_prepared("model_export_settle", job_id);
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
