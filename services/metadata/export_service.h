// Rules of model exports: ExportModel checks the request and queues an export job; when a trainer has written the
// exported directory into the job's folder, Publish moves it to its destination and registers a merged model with
// its lineage. Knows neither gRPC nor SQL.
#ifndef TUNEFORGE_SERVICES_METADATA_EXPORT_SERVICE_H_
#define TUNEFORGE_SERVICES_METADATA_EXPORT_SERVICE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/allowed_roots.h"
#include "services/metadata/job_records.h"
#include "services/metadata/job_repository.h"
#include "services/metadata/job_service.h"
#include "services/metadata/model_records.h"
#include "services/metadata/model_repository.h"
#include "services/metadata/model_service.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct ExportModelInput {
  std::string model;
  std::string revision_id;
  std::string adapter;
  std::string type;  // "merged" | "adapter"; empty when unspecified
  std::string destination_path;
  std::string exported_model_name;
  std::string dtype;           // "" | fp32 | bf16 | fp16
  int64_t max_shard_size = 0;  // bytes; 0: kDefaultMaxShardSize
  bool overwrite = false;
  std::string job_name;  // empty: export-<adapter>-<time>
};

struct ListExportsInput {
  int page_size = 0;
  std::string page_token;
  std::string model;
  std::string adapter;
};

struct ExportPage {
  std::vector<ModelExportRecord> exports;
  std::string next_page_token;
};

// transformers' default max_shard_size ("5GB").
inline constexpr int64_t kDefaultMaxShardSize = 5'000'000'000;

class ExportService {
 public:
  // Export jobs write under <artifacts_root>/jobs/<id>/export; destinations must lie under `roots`. Merged models
  // are registered through `models`.
  ExportService(Store& store, const AllowedRoots& roots, ModelService& models, std::string artifacts_root);

  // Checks every field and reference, then records the export and its QUEUED job in one transaction.
  absl::StatusOr<ModelExportRecord> StartExport(const ExportModelInput& input);
  absl::StatusOr<ModelExportRecord> GetExport(const std::string& id);
  absl::StatusOr<ExportPage> ListExports(const ListExportsInput& input);

  // For a SUCCEEDED trainer run of export job `job`: moves the job's output folder to the export's destination
  // (replacing an existing directory only when the export says overwrite, and only once the new one is complete)
  // and, for a merged export, registers the directory as the local model exported_model_name. Errors say what to
  // do; the job then ends FAILED with them.
  absl::StatusOr<PublishedExport> Publish(const JobRecord& job, const ModelExportRecord& export_record);

 private:
  // INVALID_ARGUMENT when `path` names an allowed root itself.
  absl::Status CheckNotARoot(const std::string& path) const;

  Store& store_;
  const AllowedRoots& roots_;
  ModelService& models_;
  std::string artifacts_root_;
  ModelRepository model_repo_;
  JobRepository jobs_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_EXPORT_SERVICE_H_
