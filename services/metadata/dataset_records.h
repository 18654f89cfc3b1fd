// Domain records of the Datasets resource, shared by its repository, service and handler.
#ifndef TUNEFORGE_SERVICES_METADATA_DATASET_RECORDS_H_
#define TUNEFORGE_SERVICES_METADATA_DATASET_RECORDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "services/metadata/records.h"

namespace tuneforge {

// The largest dataset revision AddDataset records (tuneforge-metadata --max-dataset-rows, --max-dataset-bytes).
struct DatasetLimits {
  int64_t max_rows = 100'000'000;
  int64_t max_bytes = int64_t{64} << 30;  // 64 GiB, over all data files of the revision
};

struct DatasetFeatureRecord {
  std::string name;
  std::string type;  // string, int, float, bool, list, object, mixed or null
  int64_t null_count = -1;  // -1: not counted
};

struct DatasetSplitRecord {
  std::string name;  // "train" | "test"
  int64_t num_rows = 0;  // 0 when unknown (Hub datasets whose card does not say)
  std::vector<std::string> files;
  std::string source_split;  // Hub only: the repo's name for the split (e.g. "validation")
};

struct DatasetRevisionRecord {
  std::string id;
  std::string dataset_id;
  int revision_number = 0;
  std::string requested_revision;  // Hub only
  std::string commit_sha;          // Hub only
  std::string data_revision;       // Hub only: "" (the repo's files) or kParquetConversionRevision
  std::string data_commit_sha;     // Hub only: the commit the files are read from
  std::vector<std::string> available_configs;  // Hub only: every config of the repo
  std::string fingerprint;
  std::string format;  // "jsonl" | "json" | "csv" | "parquet" ("mixed" for a Hub config with several)
  std::vector<DatasetFeatureRecord> features;  // Hub datasets: from the card's dataset_info, empty when it has none
  std::vector<DatasetSplitRecord> splits;
  std::vector<FileRecord> files;
  bool split_generated = false;
  uint64_t split_seed = 0;  // at most INT64_MAX (the column is bigint)
  double test_size = 0;
  absl::Time create_time;
};

struct DatasetRecord {
  std::string id;
  std::string name;
  std::string description;
  std::string source_type;  // "huggingface" | "local"
  std::string source;       // Hub repo id, or the canonical path of the local train file
  std::string config;       // Hub only: the config (subset); "" for Hub datasets added before configs were recorded
  int revision_count = 0;
  std::optional<DatasetRevisionRecord> latest_revision;
  absl::Time create_time;
  absl::Time update_time;
};

// The first rows of one split (JSON objects), as stored when the revision was added.
struct DatasetSplitPreviewRecord {
  std::string split;
  std::vector<nlohmann::json> rows;
  bool truncated = false;  // rows of the first kDatasetPreviewRows were left out to keep the preview small
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_DATASET_RECORDS_H_
