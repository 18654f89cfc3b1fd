// Local dataset files (jsonl, json, csv, parquet): streaming parsers with line-accurate errors, feature inference, a
// deterministic train/test split and the summary the metadata service records for a local DatasetRevision. A file
// is read in chunks: its size never becomes memory, only the read buffer and one row at a time do.
#ifndef TUNEFORGE_COMMON_DATASET_FILES_H_
#define TUNEFORGE_COMMON_DATASET_FILES_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/parquet_file.h"

namespace tuneforge {

enum class DatasetFormat { kJsonl, kJson, kCsv, kParquet };
std::string_view DatasetFormatName(DatasetFormat f);  // "jsonl", "json", "csv", "parquet"

// By extension (.jsonl/.ndjson, .json, .csv, .parquet, case-insensitive); .parquet in a build without Arrow ->
// UNIMPLEMENTED saying how to rebuild or convert; any other extension -> INVALID_ARGUMENT listing the formats.
// `field` names the request field in messages.
absl::StatusOr<DatasetFormat> DatasetFormatFromPath(std::string_view path, std::string_view field);

// type: "string", "int", "float", "bool", "list", "object", "mixed", or "null" (no non-null value anywhere).
struct DatasetFeature {
  std::string name;
  std::string type;
  int64_t null_count = -1;  // rows where it is null or missing; -1: not counted (text formats)
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
// A row (a jsonl line, a csv record, an element of a .json array) larger than this is refused.
constexpr size_t kMaxDatasetRowBytes = size_t{16} << 20;  // 16 MiB
constexpr size_t kDatasetReadChunkBytes = size_t{1} << 20;  // 1 MiB

struct DatasetReadLimits {
  int64_t max_file_bytes = kMaxDatasetFileBytes;
  size_t max_row_bytes = kMaxDatasetRowBytes;
  size_t read_chunk_bytes = kDatasetReadChunkBytes;
};

// What one streaming pass over a file finds. Rows are parsed and checked one at a time, and not kept.
struct DatasetFileSummary {
  DatasetFormat format = DatasetFormat::kJsonl;
  int64_t size = 0;    // bytes
  std::string sha256;  // of the raw bytes (BOM included), lowercase hex
  int64_t num_rows = 0;
  std::vector<std::string> columns;  // as DatasetFileContent::columns
  std::vector<DatasetFeature> features;  // InferFeatures of all rows, in `columns` order
  // The most bytes of the file held in memory at once: the read buffer plus the row being parsed. Bounded by the
  // limits (read_chunk_bytes + max_row_bytes and a few bytes), whatever the file's size.
  size_t max_buffered_bytes = 0;
  // How the rows are read back (ForEachDatasetRow): csv column types, and the key holding the rows of a .json object.
  std::vector<int> csv_column_types;
  std::string json_rows_key;
  // Parquet: row groups, and the compression of the first column chunk.
  int parquet_row_groups = 0;
  std::string parquet_compression;
};

// One streaming pass: checks the whole file as LoadDatasetFile does (same errors; a row over max_row_bytes ->
// INVALID_ARGUMENT naming its line and the limit) and summarizes it.
absl::StatusOr<DatasetFileSummary> SummarizeDatasetFile(const std::string& path, DatasetFormat format,
                                                       std::string_view label, const DatasetReadLimits& limits = {});

// Reads the rows of a summarized file again, in order, calling `row(index, row)` with each (a JSON object) until it
// returns false. Cheap when it stops early: only the bytes up to the last row wanted are read.
absl::Status ForEachDatasetRow(const std::string& path, std::string_view label, const DatasetFileSummary& summary,
                               const std::function<bool(size_t index, nlohmann::json&& row)>& row,
                               const DatasetReadLimits& limits = {});

// Parses a whole file into memory (the trainer's rows); `label` starts every message (normally the path).
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
// line. Nesting deeper than kMaxJsonDepth (512) -> INVALID_ARGUMENT. Missing file -> NOT_FOUND; unreadable ->
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
// The first (lowest) `k` indices of each side of TrainTestSplit(n, test_size, seed), found by following those
// indices through the same Fisher-Yates draws: memory O(k), not O(n).
SplitIndices FirstSplitIndices(size_t n, double test_size, uint64_t seed, size_t k);

struct DatasetSplitInfo {
  std::string name;
  int64_t num_rows = 0;
  std::vector<std::string> files;
};

constexpr size_t kDatasetPreviewRows = 5;
// In a preview, a string longer than this is cut (at a character boundary) and ends with "…"; a row whose preview is
// still larger than kMaxPreviewRowBytes is left out. So a preview stays small whatever the rows hold.
constexpr size_t kPreviewCellBytes = 1000;
constexpr size_t kMaxPreviewRowBytes = 64 << 10;

// The preview form of a row (long strings cut as above), or nothing when even that is larger than
// kMaxPreviewRowBytes (very many columns).
std::optional<nlohmann::json> PreviewRow(const nlohmann::json& row);

struct LocalDatasetInfo {
  DatasetFormat format = DatasetFormat::kJsonl;
  std::vector<DatasetFeature> features;
  std::vector<DatasetSplitInfo> splits;                      // "train" then "test"
  // split -> its first kDatasetPreviewRows rows, long values cut (kPreviewCellBytes, kMaxPreviewRowBytes)
  std::map<std::string, std::vector<nlohmann::json>> preview;
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
// Files are read streaming (SummarizeDatasetFile, then ForEachDatasetRow for the preview rows only).
absl::StatusOr<LocalDatasetInfo> InspectLocalDataset(const std::string& train_path, const std::string& test_path,
                                                     double test_size, uint64_t seed,
                                                     const DatasetReadLimits& limits = {});

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_DATASET_FILES_H_
