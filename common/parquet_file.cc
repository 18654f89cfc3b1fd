// Parquet dataset files through Arrow's parquet::arrow reader: a RecordBatchReader over every row group, a batch of
// kParquetBatchRows rows at a time, each value converted to JSON by its Arrow type.
#include "common/parquet_file.h"

#ifdef TUNEFORGE_HAVE_PARQUET

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <arrow/util/compression.h>
#include <parquet/arrow/reader.h>
#include <parquet/exception.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>

#include <cmath>
#include <exception>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/utf8.h"

namespace tuneforge {

namespace {

using nlohmann::json;

// Nesting deeper than this in one value is refused (as kMaxJsonDepth is for JSON files).
constexpr int kMaxDepth = 128;

absl::Status Damaged(std::string_view label, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(label), " is not a readable Parquet file: ", what.substr(0, 300),
                   "; check that it was written completely (e.g. pyarrow.parquet.read_table(path) reads it)"));
}

std::string TypeName(const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::NA: return "null";
    case arrow::Type::BOOL: return "bool";
    case arrow::Type::INT8:
    case arrow::Type::INT16:
    case arrow::Type::INT32:
    case arrow::Type::INT64:
    case arrow::Type::UINT8:
    case arrow::Type::UINT16:
    case arrow::Type::UINT32:
    case arrow::Type::UINT64: return "int";
    case arrow::Type::HALF_FLOAT:
    case arrow::Type::FLOAT:
    case arrow::Type::DOUBLE: return "float";
    case arrow::Type::LIST:
    case arrow::Type::LARGE_LIST:
    case arrow::Type::FIXED_SIZE_LIST:
    case arrow::Type::LIST_VIEW:
    case arrow::Type::LARGE_LIST_VIEW: return "list";
    case arrow::Type::STRUCT:
    case arrow::Type::MAP: return "object";
    case arrow::Type::DICTIONARY:
      return TypeName(*static_cast<const arrow::DictionaryType&>(type).value_type());
    default: return "string";  // strings, binary, dates, times, timestamps, decimals, durations
  }
}

class RowConverter {
 public:
  explicit RowConverter(std::string_view label) : label_(label) {}

  // The value at `i` of `array`; `where` names it in errors.
  absl::StatusOr<json> Value(const arrow::Array& array, int64_t i, const std::function<std::string()>& where,
                             int depth = 0) const {
    if (depth > kMaxDepth) {
      return absl::InvalidArgumentError(absl::StrCat(where(), " nests deeper than ", kMaxDepth, " levels"));
    }
    if (array.IsNull(i)) return json(nullptr);
    switch (array.type_id()) {
      case arrow::Type::NA: return json(nullptr);
      case arrow::Type::BOOL: return json(static_cast<const arrow::BooleanArray&>(array).Value(i));
      case arrow::Type::INT8: return json(static_cast<const arrow::Int8Array&>(array).Value(i));
      case arrow::Type::INT16: return json(static_cast<const arrow::Int16Array&>(array).Value(i));
      case arrow::Type::INT32: return json(static_cast<const arrow::Int32Array&>(array).Value(i));
      case arrow::Type::INT64: return json(static_cast<const arrow::Int64Array&>(array).Value(i));
      case arrow::Type::UINT8: return json(static_cast<const arrow::UInt8Array&>(array).Value(i));
      case arrow::Type::UINT16: return json(static_cast<const arrow::UInt16Array&>(array).Value(i));
      case arrow::Type::UINT32: return json(static_cast<const arrow::UInt32Array&>(array).Value(i));
      case arrow::Type::UINT64: return json(static_cast<const arrow::UInt64Array&>(array).Value(i));
      case arrow::Type::FLOAT: return Number(static_cast<const arrow::FloatArray&>(array).Value(i));
      case arrow::Type::DOUBLE: return Number(static_cast<const arrow::DoubleArray&>(array).Value(i));
      case arrow::Type::STRING:
        return Text(static_cast<const arrow::StringArray&>(array).GetView(i), false, where);
      case arrow::Type::LARGE_STRING:
        return Text(static_cast<const arrow::LargeStringArray&>(array).GetView(i), false, where);
      case arrow::Type::STRING_VIEW:
        return Text(static_cast<const arrow::StringViewArray&>(array).GetView(i), false, where);
      case arrow::Type::BINARY:
        return Text(static_cast<const arrow::BinaryArray&>(array).GetView(i), true, where);
      case arrow::Type::LARGE_BINARY:
        return Text(static_cast<const arrow::LargeBinaryArray&>(array).GetView(i), true, where);
      case arrow::Type::BINARY_VIEW:
        return Text(static_cast<const arrow::BinaryViewArray&>(array).GetView(i), true, where);
      case arrow::Type::FIXED_SIZE_BINARY:
        return Text(static_cast<const arrow::FixedSizeBinaryArray&>(array).GetView(i), true, where);
      case arrow::Type::LIST: return List(static_cast<const arrow::ListArray&>(array), i, where, depth);
      case arrow::Type::LARGE_LIST: return List(static_cast<const arrow::LargeListArray&>(array), i, where, depth);
      case arrow::Type::FIXED_SIZE_LIST:
        return List(static_cast<const arrow::FixedSizeListArray&>(array), i, where, depth);
      case arrow::Type::MAP: return Map(static_cast<const arrow::MapArray&>(array), i, where, depth);
      case arrow::Type::STRUCT: {
        const auto& s = static_cast<const arrow::StructArray&>(array);
        json out = json::object();
        for (int f = 0; f < s.num_fields(); ++f) {
          const std::string& name = s.struct_type()->field(f)->name();
          ASSIGN_OR_RETURN(out[name], Value(*s.field(f), i, [&]() -> std::string { return absl::StrCat(where(), ".", name); },
                                            depth + 1));
        }
        return out;
      }
      case arrow::Type::DICTIONARY: {
        const auto& d = static_cast<const arrow::DictionaryArray&>(array);
        return Value(*d.dictionary(), d.GetValueIndex(i), where, depth);
      }
      default: {
        // Dates, times, timestamps, decimals, durations, intervals: Arrow's own text for the value.
        arrow::Result<std::shared_ptr<arrow::Scalar>> scalar = array.GetScalar(i);
        if (!scalar.ok()) return Damaged(label_, scalar.status().ToString());
        return json((*scalar)->ToString());
      }
    }
  }

 private:
  static json Number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

  absl::StatusOr<json> Text(std::string_view bytes, bool binary, const std::function<std::string()>& where) const {
    const size_t bad = FirstInvalidUtf8(bytes);
    if (bad == std::string_view::npos) return json(std::string(bytes));
    if (binary) return json(absl::Base64Escape(absl::string_view(bytes.data(), bytes.size())));
    return absl::InvalidArgumentError(absl::StrCat(where(), " is not valid UTF-8 (byte ", bad,
                                                   "); a string column must hold UTF-8 text"));
  }

  template <typename ListArray>
  absl::StatusOr<json> List(const ListArray& list, int64_t i, const std::function<std::string()>& where,
                            int depth) const {
    json out = json::array();
    const std::shared_ptr<arrow::Array> values = list.values();
    const int64_t start = list.value_offset(i), length = list.value_length(i);
    for (int64_t k = 0; k < length; ++k) {
      ASSIGN_OR_RETURN(json v, Value(*values, start + k, [&]() -> std::string { return absl::StrCat(where(), "[", k, "]"); },
                                     depth + 1));
      out.push_back(std::move(v));
    }
    return out;
  }

  // String keys: an object; other keys: a list of [key, value] pairs.
  absl::StatusOr<json> Map(const arrow::MapArray& map, int64_t i, const std::function<std::string()>& where,
                           int depth) const {
    const bool string_keys = map.keys()->type_id() == arrow::Type::STRING ||
                             map.keys()->type_id() == arrow::Type::LARGE_STRING;
    json out = string_keys ? json::object() : json::array();
    const int64_t start = map.value_offset(i), length = map.value_length(i);
    for (int64_t k = 0; k < length; ++k) {
      const std::function<std::string()> at = [&]() -> std::string { return absl::StrCat(where(), "{", k, "}"); };
      ASSIGN_OR_RETURN(json key, Value(*map.keys(), start + k, at, depth + 1));
      ASSIGN_OR_RETURN(json value, Value(*map.items(), start + k, at, depth + 1));
      if (string_keys && key.is_string()) {
        out[key.get<std::string>()] = std::move(value);
      } else {
        out.push_back(json::array({std::move(key), std::move(value)}));
      }
    }
    return out;
  }

  std::string label_;
};

// An open file and its batch reader (the reader must outlive the batches' reader).
struct OpenParquet {
  std::unique_ptr<parquet::arrow::FileReader> reader;
  std::shared_ptr<parquet::FileMetaData> metadata;
  std::unique_ptr<arrow::RecordBatchReader> batches;
};

absl::StatusOr<OpenParquet> Open(const std::string& path, std::string_view label) {
  OpenParquet out;
  try {
    arrow::Result<std::shared_ptr<arrow::io::ReadableFile>> file =
        arrow::io::ReadableFile::Open(path, arrow::system_memory_pool());
    if (!file.ok()) {
      if (file.status().IsIOError() && file.status().ToString().find("No such file") != std::string::npos) {
        return absl::NotFoundError(absl::StrCat(std::string(label), " does not exist"));
      }
      return absl::InvalidArgumentError(absl::StrCat(std::string(label), " cannot be opened: ", file.status().ToString()));
    }
    // No Arrow thread pools (use_threads off, no pre-buffering, which reads through the IO pool) and the system
    // allocator rather than Arrow's jemalloc: a process that forks (the embedded PostgreSQL, test servers) must not
    // meet Arrow's fork handlers, which can deadlock once its pools exist.
    parquet::ArrowReaderProperties properties(/*use_threads=*/false);
    properties.set_batch_size(kParquetBatchRows);
    properties.set_pre_buffer(false);
    parquet::ReaderProperties reader_properties(arrow::system_memory_pool());
    parquet::arrow::FileReaderBuilder builder;
    arrow::Status opened = builder.Open(*file, reader_properties);
    if (!opened.ok()) return Damaged(label, opened.ToString());
    builder.memory_pool(arrow::system_memory_pool());
    builder.properties(properties);
    arrow::Status built = builder.Build(&out.reader);
    if (!built.ok()) return Damaged(label, built.ToString());
    out.metadata = out.reader->parquet_reader()->metadata();
    arrow::Result<std::unique_ptr<arrow::RecordBatchReader>> batches = out.reader->GetRecordBatchReader();
    if (!batches.ok()) return Damaged(label, batches.status().ToString());
    out.batches = *std::move(batches);
  } catch (const std::exception& e) {  // parquet::ParquetException from the footer's parser
    return Damaged(label, e.what());
  }
  return out;
}

// Each row of the open file, converted, until `row` returns false; counts nulls per column when `nulls` is given.
absl::Status ForEachRow(OpenParquet& file, std::string_view label,
                        const std::function<bool(size_t, json&&)>& row, std::vector<int64_t>* nulls,
                        int64_t* max_batch_rows) {
  const RowConverter convert(label);
  size_t index = 0;
  try {
    while (true) {
      std::shared_ptr<arrow::RecordBatch> batch;
      arrow::Status read = file.batches->ReadNext(&batch);
      if (!read.ok()) return Damaged(label, read.ToString());
      if (batch == nullptr) return absl::OkStatus();
      if (max_batch_rows != nullptr) *max_batch_rows = std::max(*max_batch_rows, batch->num_rows());
      if (nulls != nullptr) {
        nulls->resize(batch->num_columns(), 0);
        for (int c = 0; c < batch->num_columns(); ++c) (*nulls)[c] += batch->column(c)->null_count();
      }
      for (int64_t r = 0; r < batch->num_rows(); ++r, ++index) {
        json out = json::object();
        for (int c = 0; c < batch->num_columns(); ++c) {
          const std::string& name = batch->schema()->field(c)->name();
          ASSIGN_OR_RETURN(out[name], convert.Value(*batch->column(c), r, [&]() -> std::string {
            return absl::StrCat(std::string(label), ": row ", index, ", column '", name, "'");
          }));
        }
        if (!row(index, std::move(out))) return absl::OkStatus();
      }
    }
  } catch (const std::exception& e) {
    return Damaged(label, e.what());
  }
}

}  // namespace

bool ParquetSupported() { return true; }

absl::StatusOr<ParquetSummary> SummarizeParquetFile(const std::string& path, std::string_view label) {
  ASSIGN_OR_RETURN(OpenParquet file, Open(path, label));
  ParquetSummary summary;
  summary.num_rows = file.metadata->num_rows();
  summary.num_row_groups = file.metadata->num_row_groups();
  if (summary.num_row_groups > 0 && file.metadata->num_columns() > 0) {
    summary.compression =
        arrow::util::Codec::GetCodecAsString(file.metadata->RowGroup(0)->ColumnChunk(0)->compression());
  }
  std::vector<int64_t> nulls;
  int64_t rows = 0;
  RETURN_IF_ERROR(ForEachRow(
      file, label, [&](size_t, json&&) { return ++rows, true; }, &nulls, &summary.max_batch_rows));
  if (rows != summary.num_rows) {
    return Damaged(label, absl::StrCat("its metadata says ", summary.num_rows, " rows but ", rows, " were read"));
  }
  if (rows == 0) return absl::InvalidArgumentError(absl::StrCat(std::string(label), " has no rows"));
  const std::shared_ptr<arrow::Schema> schema = file.batches->schema();
  nulls.resize(schema->num_fields(), 0);
  for (int c = 0; c < schema->num_fields(); ++c) {
    ParquetColumn column;
    column.name = schema->field(c)->name();
    column.arrow_type = schema->field(c)->type()->ToString();
    column.null_count = nulls[c];
    column.type = nulls[c] == rows ? "null" : TypeName(*schema->field(c)->type());
    summary.columns.push_back(std::move(column));
  }
  return summary;
}

absl::Status ForEachParquetRow(const std::string& path, std::string_view label,
                               const std::function<bool(size_t, json&&)>& row) {
  ASSIGN_OR_RETURN(OpenParquet file, Open(path, label));
  return ForEachRow(file, label, row, nullptr, nullptr);
}

}  // namespace tuneforge

#else  // no Arrow in this build

namespace tuneforge {

namespace {

absl::Status NoParquet(std::string_view label) {
  return absl::UnimplementedError(absl::StrCat(
      label, ": this tuneforge was built without Parquet support; rebuild it with pyarrow installed in the Python "
             "environment it builds against (scripts/python-env.sh does; or set TUNEFORGE_ARROW), or convert the "
             "file to jsonl"));
}

}  // namespace

bool ParquetSupported() { return false; }

absl::StatusOr<ParquetSummary> SummarizeParquetFile(const std::string&, std::string_view label) {
  return NoParquet(label);
}

absl::Status ForEachParquetRow(const std::string&, std::string_view label,
                               const std::function<bool(size_t, nlohmann::json&&)>&) {
  return NoParquet(label);
}

}  // namespace tuneforge

#endif  // TUNEFORGE_HAVE_PARQUET
