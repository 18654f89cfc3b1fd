// SQL for the Models resource: one method per statement in sql/model_*.sql.
#ifndef TUNEFORGE_SERVICES_METADATA_MODEL_REPOSITORY_H_
#define TUNEFORGE_SERVICES_METADATA_MODEL_REPOSITORY_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "services/metadata/model_records.h"
#include "absl/status/statusor.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct ModelListFilter {
  std::string after_name;  // empty: first page
  std::string name_prefix;
  std::string family;
  std::string source_type;
  int limit = 50;
};

class ModelRepository;

// The model a request names by id or name; NOT_FOUND saying where to look otherwise.
absl::StatusOr<ModelRecord> FindModelByRef(Tx& tx, const std::string& ref);

class ModelRepository {
 public:
  std::optional<ModelRecord> GetById(Tx& tx, const std::string& id);
  std::optional<ModelRecord> GetByName(Tx& tx, const std::string& name);
  std::optional<ModelRecord> GetBySource(Tx& tx, const std::string& source_type, const std::string& source);
  void Lock(Tx& tx, const std::string& model_id);
  std::string Insert(Tx& tx, const ModelRecord& model);
  void Touch(Tx& tx, const std::string& model_id);
  std::string InsertRevision(Tx& tx, const ModelRevisionRecord& revision);
  std::optional<ModelRevisionRecord> GetRevision(Tx& tx, const std::string& revision_id);
  std::optional<ModelRevisionRecord> FindRevision(Tx& tx, const std::string& model_id, const std::string& fingerprint);
  // Newest first; `below` = 0 starts at the newest.
  std::vector<ModelRevisionRecord> ListRevisions(Tx& tx, const std::string& model_id, int below, int limit);
  std::vector<ModelRecord> List(Tx& tx, const ModelListFilter& filter);
  std::vector<DependentRecord> Dependents(Tx& tx, const std::string& model_id);
  void DeleteExports(Tx& tx, const std::string& model_id);
  void DeleteAdapters(Tx& tx, const std::string& model_id);
  void DeleteRevisions(Tx& tx, const std::string& model_id);
  void Delete(Tx& tx, const std::string& model_id);
  // Returns the new export's id.
  std::string InsertExport(Tx& tx, const ModelExportRecord& export_request);
  // An export whose job still runs (or waits) into `destination_path`.
  std::optional<std::string> ExportByDestination(Tx& tx, const std::string& destination_path);
  // An export that succeeded into `destination_path`.
  std::optional<std::string> ExportSucceededAt(Tx& tx, const std::string& destination_path);
  std::optional<ModelExportRecord> GetExport(Tx& tx, const std::string& id);
  // Newest first; model_id / adapter_id empty: any. after_id empty: the first page.
  std::vector<ModelExportRecord> ListExports(Tx& tx, const std::string& model_id, const std::string& adapter_id,
                                             int64_t after_create_us, const std::string& after_id, int limit);
  void SetExportResult(Tx& tx, const std::string& id, const std::string& exported_model_id,
                       const std::string& exported_model_revision_id, const std::string& state);
  // Copies the state of job `job_id` into its export, before the job is removed.
  void SettleExport(Tx& tx, const std::string& job_id);
};

// Row mapping shared with other repositories that return model revisions (columns prefixed "r_").
std::vector<FileRecord> FilesFromJson(std::string_view json_text);
std::string FilesToJson(const std::vector<FileRecord>& files);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_MODEL_REPOSITORY_H_
