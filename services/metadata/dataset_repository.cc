// Datasets repository: runs sql/dataset_*.sql and maps rows to records. libpqxx errors propagate to
// Store::InTransaction, which rolls back and turns them into a status.
#include "services/metadata/dataset_repository.h"

#include <cstdint>

#include "services/metadata/model_repository.h"
#include "absl/strings/str_cat.h"
#include "services/metadata/request_checks.h"
#include "services/metadata/store_internal.h"

namespace tuneforge {

namespace {

using nlohmann::json;

// jsonb cannot hold U+0000; dataset rows may, so the copy we store has U+FFFD in its place.
std::string WithoutNul(const std::string& s) {
  if (s.find('\0') == std::string::npos) return s;
  std::string out;
  for (char c : s) {
    if (c == '\0') {
      out += "\xEF\xBF\xBD";
    } else {
      out += c;
    }
  }
  return out;
}

json ForJsonb(const json& value) {
  if (value.is_string()) return WithoutNul(value.get<std::string>());
  if (value.is_array()) {
    json out = json::array();
    for (const json& v : value) out.push_back(ForJsonb(v));
    return out;
  }
  if (value.is_object()) {
    json out = json::object();
    for (auto it = value.begin(); it != value.end(); ++it) out[WithoutNul(it.key())] = ForJsonb(it.value());
    return out;
  }
  return value;
}

std::string Dump(const json& value) { return ForJsonb(value).dump(-1, ' ', false, json::error_handler_t::replace); }

std::vector<DatasetFeatureRecord> FeaturesFromJson(const json& j) {
  std::vector<DatasetFeatureRecord> out;
  if (!j.is_array()) return out;
  for (const json& f : j) {
    out.push_back({f.value("name", ""), f.value("type", ""), f.value("null_count", int64_t{-1})});
  }
  return out;
}

json FeaturesToJson(const std::vector<DatasetFeatureRecord>& features) {
  json out = json::array();
  for (const auto& f : features) {
    json feature = {{"name", f.name}, {"type", f.type}};
    if (f.null_count >= 0) feature["null_count"] = f.null_count;
    out.push_back(std::move(feature));
  }
  return out;
}

std::vector<DatasetSplitRecord> SplitsFromJson(const json& j) {
  std::vector<DatasetSplitRecord> out;
  if (!j.is_array()) return out;
  for (const json& s : j) {
    DatasetSplitRecord split;
    split.name = s.value("name", "");
    split.num_rows = s.value("num_rows", int64_t{0});
    split.source_split = s.value("source_split", "");
    if (s.contains("files") && s["files"].is_array()) {
      for (const json& f : s["files"]) split.files.push_back(f.get<std::string>());
    }
    out.push_back(std::move(split));
  }
  return out;
}

json FilesToJsonValue(const std::vector<FileRecord>& files) {
  json out = json::array();
  for (const auto& f : files) out.push_back({{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}});
  return out;
}

json SplitsToJson(const std::vector<DatasetSplitRecord>& splits) {
  json out = json::array();
  for (const auto& s : splits) {
    json split = {{"name", s.name}, {"num_rows", s.num_rows}, {"files", s.files}};
    if (!s.source_split.empty()) split["source_split"] = s.source_split;
    out.push_back(std::move(split));
  }
  return out;
}

DatasetRevisionRecord RevisionFromRow(const pqxx::row& row) {
  DatasetRevisionRecord r;
  r.id = Str(row, "r_id");
  r.dataset_id = Str(row, "r_dataset_id");
  r.revision_number = static_cast<int>(Int(row, "r_revision_number"));
  r.requested_revision = Str(row, "r_requested_revision");
  r.commit_sha = Str(row, "r_commit_sha");
  r.data_revision = Str(row, "r_data_revision");
  r.data_commit_sha = Str(row, "r_data_commit_sha");
  const json configs = Json(row, "r_available_configs");
  if (configs.is_array()) {
    for (const json& c : configs) {
      if (c.is_string()) r.available_configs.push_back(c.get<std::string>());
    }
  }
  r.fingerprint = Str(row, "r_fingerprint");
  r.format = Str(row, "r_format");
  r.features = FeaturesFromJson(Json(row, "r_features"));
  r.splits = SplitsFromJson(Json(row, "r_splits"));
  r.files = FilesFromJson(Str(row, "r_files"));
  r.split_generated = Bool(row, "r_split_generated");
  r.split_seed = static_cast<uint64_t>(Int(row, "r_split_seed"));
  r.test_size = Double(row, "r_test_size");
  r.create_time = Micros(row, "r_create_us");
  return r;
}

DatasetRecord DatasetFromRow(const pqxx::row& row) {
  DatasetRecord d;
  d.id = Str(row, "id");
  d.name = Str(row, "name");
  d.description = Str(row, "description");
  d.source_type = Str(row, "source_type");
  d.source = Str(row, "source");
  d.config = Str(row, "config");
  d.revision_count = static_cast<int>(Int(row, "revision_count"));
  d.create_time = Micros(row, "create_us");
  d.update_time = Micros(row, "update_us");
  if (!row["r_id"].is_null()) d.latest_revision = RevisionFromRow(row);
  return d;
}

std::optional<DatasetRecord> FirstDataset(const pqxx::result& result) {
  if (result.empty()) return std::nullopt;
  return DatasetFromRow(result[0]);
}

std::optional<DatasetRevisionRecord> FirstRevision(const pqxx::result& result) {
  if (result.empty()) return std::nullopt;
  return RevisionFromRow(result[0]);
}

}  // namespace

std::optional<DatasetRecord> DatasetRepository::GetById(Tx& tx, const std::string& id) {
  return FirstDataset(tx.work().exec_prepared("dataset_get_by_id", id));
}

std::optional<DatasetRecord> DatasetRepository::GetByName(Tx& tx, const std::string& name) {
  return FirstDataset(tx.work().exec_prepared("dataset_get_by_name", name));
}

std::optional<DatasetRecord> DatasetRepository::GetBySource(Tx& tx, const std::string& source_type,
                                                           const std::string& source, const std::string& config) {
  return FirstDataset(tx.work().exec_prepared("dataset_get_by_source", source_type, source, config));
}

void DatasetRepository::SetConfig(Tx& tx, const std::string& dataset_id, const std::string& config) {
  tx.work().exec_prepared("dataset_set_config", dataset_id, config);
}

void DatasetRepository::Lock(Tx& tx, const std::string& dataset_id) {
  tx.work().exec_prepared("dataset_lock", dataset_id);
}

std::string DatasetRepository::Insert(Tx& tx, const DatasetRecord& d) {
  return tx.work()
      .exec_prepared1("dataset_insert", d.name, d.description, d.source_type, d.source, d.config)["id"]
      .as<std::string>();
}

void DatasetRepository::Touch(Tx& tx, const std::string& dataset_id) {
  tx.work().exec_prepared("dataset_touch", dataset_id);
}

std::string DatasetRepository::InsertRevision(Tx& tx, const DatasetRevisionRecord& r, const json& preview) {
  return tx.work()
      .exec_prepared1("dataset_revision_insert", r.dataset_id, r.requested_revision, r.commit_sha, r.fingerprint,
                      r.format, Dump(FeaturesToJson(r.features)), Dump(SplitsToJson(r.splits)), Dump(preview),
                      Dump(FilesToJsonValue(r.files)), r.split_generated, static_cast<int64_t>(r.split_seed),
                      r.test_size, r.data_revision, r.data_commit_sha, Dump(json(r.available_configs)))["id"]
      .as<std::string>();
}

std::optional<DatasetRevisionRecord> DatasetRepository::GetRevision(Tx& tx, const std::string& revision_id) {
  return FirstRevision(tx.work().exec_prepared("dataset_revision_get", revision_id));
}

std::optional<DatasetRevisionRecord> DatasetRepository::FindRevision(Tx& tx, const std::string& dataset_id,
                                                                    const std::string& fingerprint) {
  return FirstRevision(tx.work().exec_prepared("dataset_revision_find", dataset_id, fingerprint));
}

std::vector<DatasetRevisionRecord> DatasetRepository::ListRevisions(Tx& tx, const std::string& dataset_id, int below,
                                                                    int limit) {
  std::optional<int> start;
  if (below > 0) start = below;
  std::vector<DatasetRevisionRecord> out;
  for (const auto& row : tx.work().exec_prepared("dataset_revision_list", dataset_id, start, limit)) {
    out.push_back(RevisionFromRow(row));
  }
  return out;
}

json DatasetRepository::Preview(Tx& tx, const std::string& revision_id) {
  pqxx::result result = tx.work().exec_prepared("dataset_revision_preview", revision_id);
  if (result.empty()) return json::object();
  json preview = Json(result[0], "preview");
  return preview.is_object() ? preview : json::object();
}

std::vector<DatasetRecord> DatasetRepository::List(Tx& tx, const DatasetListFilter& f) {
  std::vector<DatasetRecord> out;
  for (const auto& row : tx.work().exec_prepared("dataset_list", NullIfEmpty(f.after_name), NullIfEmpty(f.name_prefix),
                                                 NullIfEmpty(f.source_type), f.limit)) {
    out.push_back(DatasetFromRow(row));
  }
  return out;
}

std::vector<DependentRecord> DatasetRepository::Dependents(Tx& tx, const std::string& dataset_id) {
  std::vector<DependentRecord> out;
  for (const auto& row : tx.work().exec_prepared("dataset_dependents", dataset_id)) {
    out.push_back({Str(row, "kind"), Str(row, "name"), Str(row, "id")});
  }
  return out;
}

void DatasetRepository::DeletePrompts(Tx& tx, const std::string& id) {
  tx.work().exec_prepared("dataset_delete_prompts", id);
}
void DatasetRepository::DeleteRevisions(Tx& tx, const std::string& id) {
  tx.work().exec_prepared("dataset_delete_revisions", id);
}
void DatasetRepository::Delete(Tx& tx, const std::string& id) { tx.work().exec_prepared("dataset_delete", id); }


absl::StatusOr<DatasetRecord> FindDatasetByRef(Tx& tx, const std::string& ref) {
  DatasetRepository datasets;
  std::optional<DatasetRecord> dataset = IsUuid(ref) ? datasets.GetById(tx, ref) : datasets.GetByName(tx, ref);
  if (!dataset) {
    return absl::NotFoundError(
        absl::StrCat("dataset '", ref, "' not found; ListDatasets shows the registered datasets"));
  }
  return *dataset;
}

}  // namespace tuneforge
