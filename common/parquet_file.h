// Parquet dataset files through Apache Arrow's C++ reader (libparquet): every encoding and compression the format
// has, rows read a batch at a time as JSON objects, features from the file's schema, row counts from its metadata,
// nulls counted per column. The header names no Arrow type, so only common/parquet_file.cc (compiled as C++20, as
// Arrow's headers need) sees Arrow. Without Arrow in the build (TUNEFORGE_HAVE_PARQUET off), every call answers
// UNIMPLEMENTED saying how to build with it.
#ifndef TUNEFORGE_COMMON_PARQUET_FILE_H_
#define TUNEFORGE_COMMON_PARQUET_FILE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tuneforge {

// True when this build reads Parquet.
bool ParquetSupported();

struct ParquetColumn {
  std::string name;
  // As DatasetFeature types: "string", "int", "float", "bool", "list", "object", or "null" (no non-null value);
  // dates, times, decimals and binary values read as strings.
  std::string type;
  std::string arrow_type;  // Arrow's name for it, e.g. "list<element: struct<role: string, content: string>>"
  int64_t null_count = 0;
};

struct ParquetSummary {
  int64_t num_rows = 0;  // from the file's metadata, checked against the rows read
  int num_row_groups = 0;
  std::vector<ParquetColumn> columns;  // the schema's top-level fields, in order
  std::string compression;             // of the first column chunk: "uncompressed", "snappy", "zstd", "gzip", ...
  // The most rows held decoded at once (one batch), whatever the file's size.
  int64_t max_batch_rows = 0;
};

// Rows are decoded this many at a time (and never a whole row group at once).
inline constexpr int64_t kParquetBatchRows = 1024;

// Reads the whole file once, a batch at a time, checking every value (strings must be UTF-8), and summarizes it.
// A file that is not Parquet or is damaged -> INVALID_ARGUMENT starting with `label`, saying what Arrow found; a row
// that cannot be converted -> INVALID_ARGUMENT naming its row (0-based) and column. No rows -> INVALID_ARGUMENT.
absl::StatusOr<ParquetSummary> SummarizeParquetFile(const std::string& path, std::string_view label);

// Calls `row(index, row)` with each row in order, as a JSON object keyed by column, until it returns false: lists are
// arrays, structs and string-keyed maps objects, nulls null, binary values that are not UTF-8 base64 strings,
// temporal and decimal values Arrow's text form. Reads only as far as the last row wanted.
absl::Status ForEachParquetRow(const std::string& path, std::string_view label,
                               const std::function<bool(size_t index, nlohmann::json&& row)>& row);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_PARQUET_FILE_H_
