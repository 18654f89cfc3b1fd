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
  int64_t num_rows = 0;  // 0 when unknown (Hub datasets)
  std::vector<std::string> files;
};

struct DatasetRevisionRecord {
  std::string id;
  std::string dataset_id;
  int revision_number = 0;
  std::string requested_revision;  // Hub only
  std::string commit_sha;          // Hub only
  std::string fingerprint;
  std::string format;  // "jsonl" | "json" | "csv" ("mixed" for a Hub repo with several)
  std::vector<DatasetFeatureRecord> features;  // empty when unknown (Hub datasets for now)
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
