// Local dataset files (jsonl, json, csv): parsing with line-accurate errors, feature inference, a deterministic
// train/test split and the summary the metadata service records for a local DatasetRevision.
#ifndef TUNEFORGE_COMMON_DATASET_FILES_H_
#define TUNEFORGE_COMMON_DATASET_FILES_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace tuneforge {

enum class DatasetFormat { kJsonl, kJson, kCsv };
std::string_view DatasetFormatName(DatasetFormat f);  // "jsonl", "json", "csv"

// By extension (.jsonl/.ndjson, .json, .csv, case-insensitive). .parquet -> UNIMPLEMENTED "parquet is not supported
// yet; convert the file to jsonl (e.g. pandas.read_parquet(...).to_json(lines=True, orient='records'))"; any other
// extension -> INVALID_ARGUMENT listing the formats. `field` names the request field in messages.
absl::StatusOr<DatasetFormat> DatasetFormatFromPath(std::string_view path, std::string_view field);

// type: "string", "int", "float", "bool", "list", "object", "mixed", or "null" (no non-null value anywhere).
struct DatasetFeature {
  std::string name;
  std::string type;
};

struct DatasetFileContent {
  std::vector<nlohmann::json> rows;  // each a JSON object
  // Column names in the file's own order: the csv header, or keys in first-seen order for json/jsonl
  // (nlohmann::json objects iterate their keys sorted, so this is the only record of the file's order).
  std::vector<std::string> columns;
  int64_t size = 0;    // bytes
  std::string sha256;  // of the raw bytes (BOM included), lowercase hex
};

constexpr int64_t kMaxDatasetFileBytes = int64_t{4} << 30;  // 4 GiB
constexpr int kMaxJsonNestingDepth = 512;

// Parses a whole file; `label` starts every message (normally the path).
//   jsonl: one object per non-empty line; errors "<label>:<line>: ..." (1-based) saying what is wrong (not JSON,
//     not an object).
//   json: an array of objects, or an object with exactly one array-of-objects value (as HF "data" files); errors
//     give the line, column and byte offset.
//   csv: RFC 4180 (header row, quoted fields with "" escapes and embedded newlines, CRLF or LF, optional UTF-8 BOM,
//     blank lines skipped); a row with a different field count -> error naming its line; an unterminated quote ->
//     error naming the line it opened on; duplicate column names -> error; an empty header cell becomes
//     "Unnamed: <index>" as in pandas. Column values are typed per column as pandas would: int if every non-empty
//     value is an integer (int64), else float if every non-empty value is a number, else bool if every non-empty
//     value is True/true/TRUE/False/false/FALSE, else string; empty cells are null.
// Empty file / no rows -> INVALID_ARGUMENT "<label> has no rows". Non-UTF-8 content -> INVALID_ARGUMENT naming the
// line. Nesting deeper than kMaxJsonNestingDepth -> INVALID_ARGUMENT. Missing file -> NOT_FOUND; unreadable ->
// PERMISSION_DENIED; a directory or other non-regular file -> INVALID_ARGUMENT; larger than max_bytes ->
// RESOURCE_EXHAUSTED. The sha256 is computed while reading, in the same pass.
absl::StatusOr<DatasetFileContent> LoadDatasetFile(const std::string& path, DatasetFormat format,
                                                   std::string_view label,
                                                   int64_t max_bytes = kMaxDatasetFileBytes);

// Union of keys in first-seen order (within one row, in the row's iteration order); type per column from the
// non-null values: all ints -> int, ints and floats -> float, one JSON type -> that type, otherwise mixed; a column
// that is null everywhere -> "null". Rows that are not objects are ignored. With `column_order`, the names listed
// there come first, in that order (names it lists that no row has are left out), then any others.
std::vector<DatasetFeature> InferFeatures(const std::vector<nlohmann::json>& rows,
                                          const std::vector<std::string>& column_order = {});

// Deterministic split in the spirit of datasets' train_test_split(test_size, seed, shuffle=True): 0..n-1 permuted
// with std::mt19937_64(seed) by our own Fisher-Yates (uniform draws by rejection, so the result is the same with
// every standard library); the first n_test = ceil(n * test_size) go to test, clamped to [1, n-1] when n >= 2
// (n < 2: everything is train). Both returned sorted ascending.
// 0..n-1 permuted by that Fisher-Yates with std::mt19937_64(seed).
std::vector<size_t> SeededPermutation(size_t n, uint64_t seed);

struct SplitIndices {
  std::vector<size_t> train, test;
};
SplitIndices TrainTestSplit(size_t n, double test_size, uint64_t seed);

struct DatasetSplitInfo {
  std::string name;
  int64_t num_rows = 0;
  std::vector<std::string> files;
};

constexpr size_t kDatasetPreviewRows = 5;

struct LocalDatasetInfo {
  DatasetFormat format = DatasetFormat::kJsonl;
  std::vector<DatasetFeature> features;
  std::vector<DatasetSplitInfo> splits;                      // "train" then "test"
  std::map<std::string, std::vector<nlohmann::json>> preview;  // split -> first kDatasetPreviewRows rows of it
  std::vector<std::tuple<std::string, int64_t, std::string>> files;  // (canonical path, size, sha256)
  bool split_generated = false;
  uint64_t seed = 42;
  double test_size = 0.1;
  // sha256 over the format, each file's role and sha256, split_generated and, when the split is generated, the
  // seed and test_size. Paths and mtimes are not included: the same bytes moved elsewhere keep their fingerprint.
  std::string fingerprint;
};

// train_path / test_path are already canonical and confined; an empty test_path means "no test file".
// test_size must be in (0, 0.5] (checked even with a test file) else INVALID_ARGUMENT "local.test_size ...".
// With a test file: both parsed, same format required (INVALID_ARGUMENT on "local.test_path"), the test file's
// columns must equal the train file's (missing or extra columns named) and split_generated=false; features are
// inferred over both files. Without: the train file is split with TrainTestSplit(n, test_size, seed); fewer than 2
// rows -> INVALID_ARGUMENT saying to add rows or give test_path. Rows that are not objects, or are missing a
// feature column, are accepted (they read as nulls). Features keep the train file's column order.
absl::StatusOr<LocalDatasetInfo> InspectLocalDataset(const std::string& train_path, const std::string& test_path,
                                                     double test_size, uint64_t seed);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_DATASET_FILES_H_
