// Rules of the Datasets resource: source resolution (Hub repo or local files), save_or_fetch revisions,
// previews and removal with dependent prompts. Knows neither gRPC nor SQL.
#ifndef TUNEFORGE_SERVICES_METADATA_DATASET_SERVICE_H_
#define TUNEFORGE_SERVICES_METADATA_DATASET_SERVICE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/allowed_roots.h"
#include "common/hf_hub_client.h"
#include "services/metadata/dataset_records.h"
#include "services/metadata/dataset_repository.h"
#include "services/metadata/store.h"

namespace tuneforge {

struct AddDatasetInput {
  std::string name;
  std::string description;
  std::string source_type;  // "huggingface" | "local"; empty when the request named no source
  std::string repo_id;      // huggingface
  std::string revision;     // huggingface; empty means main
  std::string token;        // huggingface; never stored or logged
  std::string config;       // huggingface; empty: the repo's default config
  std::string train_split;  // huggingface; empty: "train" or the only split
  std::string test_split;   // huggingface; empty: "test", else "validation", else none; "none": none
  std::string data_files;   // huggingface; "" (repo files, else the Parquet conversion), "repo", "parquet_conversion"
  std::string train_path;   // local
  std::string test_path;    // local; empty: the test split is cut from the train file
  std::optional<double> test_size;  // local; default 0.1
  std::optional<uint64_t> seed;     // local; default 42
};

struct AddDatasetResult {
  DatasetRecord dataset;
  DatasetRevisionRecord revision;
  AddOutcome outcome = AddOutcome::kCreated;
};

struct ListDatasetsInput {
  int page_size = 0;
  std::string page_token;
  std::string name_prefix;
  std::string source_type;  // empty: any
};

struct DatasetPage {
  std::vector<DatasetRecord> datasets;
  std::string next_page_token;
};

struct DatasetRevisionPage {
  std::vector<DatasetRevisionRecord> revisions;
  std::string next_page_token;
};

// The rows of one GetDatasetPreview answer add up to at most this much JSON, whatever the stored preview holds (one
// stored by an older server, or imported): with protobuf's overhead the answer stays far below the 4 MiB that
// clients accept by default.
inline constexpr size_t kMaxPreviewResponseBytes = 256 << 10;

struct DatasetPreview {
  std::string revision_id;
  std::vector<DatasetSplitPreviewRecord> splits;  // "train" then "test"
};

class DatasetService {
 public:
  // `default_hf_token` (the server's HF_TOKEN) is used when a request carries none. A revision over `limits` is
  // RESOURCE_EXHAUSTED, naming the limit and its setting.
  DatasetService(Store& store, const AllowedRoots& roots, const HubClient& hub, std::string default_hf_token,
                 DatasetLimits limits = {});

  absl::StatusOr<AddDatasetResult> AddDataset(const AddDatasetInput& input);
  absl::StatusOr<DatasetRecord> GetDataset(const std::string& ref);
  absl::StatusOr<DatasetPage> ListDatasets(const ListDatasetsInput& input);
  absl::StatusOr<DatasetRevisionPage> ListDatasetRevisions(const std::string& ref, int page_size,
                                                           const std::string& page_token);
  // `revision_id` empty: the latest revision; `split` empty: both splits. The stored rows are cut again as when they
  // were stored (kDatasetPreviewRows, kPreviewCellBytes, kMaxPreviewRowBytes) and up to kMaxPreviewResponseBytes.
  absl::StatusOr<DatasetPreview> GetDatasetPreview(const std::string& ref, const std::string& revision_id,
                                                   const std::string& split);
  // Returns what was removed besides the dataset ("prompt 'x' (id)", ...).
  absl::StatusOr<std::vector<std::string>> RemoveDataset(const std::string& ref, bool force);

 private:
  // The revision a source resolves to, before it is stored; `preview` receives split -> first rows.
  // Sets *config to the config (subset) the revision reads.
  absl::StatusOr<DatasetRevisionRecord> ResolveHuggingFace(const AddDatasetInput& input, std::string* config);
  absl::StatusOr<DatasetRevisionRecord> ResolveLocal(const AddDatasetInput& input, const std::string& train_path,
                                                     nlohmann::json* preview);
  absl::StatusOr<DatasetRecord> FindDataset(Tx& tx, const std::string& ref);
  // RESOURCE_EXHAUSTED when `rows` or `bytes` pass limits_, starting with `what` and naming the setting.
  absl::Status CheckLimits(int64_t rows, int64_t bytes, const std::string& what) const;

  Store& store_;
  DatasetLimits limits_;
  const AllowedRoots& roots_;
  const HubClient& hub_;
  std::string default_hf_token_;
  DatasetRepository datasets_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_DATASET_SERVICE_H_
