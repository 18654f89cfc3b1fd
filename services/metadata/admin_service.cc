// Admin service: the database document (format, schema version, tables) and its validation, export from one
// snapshot, import in one transaction in dependency order.
#include "services/metadata/admin_service.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/json_limits.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "services/metadata/import_checks.h"
#include "services/metadata/request_checks.h"

namespace tuneforge {

namespace {

using nlohmann::json;

// How a column's value must look in the document (what to_jsonb writes for the column's SQL type).
enum class ColumnKind {
  kUuid,    // uuid: a canonical UUID string
  kText,    // text: a string without NUL
  kInt,     // integer: a whole number in int32 range
  kBigint,  // bigint: a whole number
  kDouble,  // double precision: a number
  kBool,    // boolean
  kJson,    // jsonb: any JSON value
  kTime,    // timestamptz: an RFC 3339 string
};

struct Column {
  const char* name;
  ColumnKind kind;
  bool nullable;
};

struct Table {
  std::string name;
  std::vector<Column> columns;
};

// The columns of every exported table, as in migrations/; admin_test checks this list against the migrated schema.
const std::vector<Table>& Tables() {
  using K = ColumnKind;
  static const auto* tables = new std::vector<Table>{
      {"models",
       {{"id", K::kUuid, false},
        {"name", K::kText, false},
        {"description", K::kText, false},
        {"source_type", K::kText, false},
        {"source", K::kText, false},
        {"family", K::kText, false},
        {"create_time", K::kTime, false},
        {"update_time", K::kTime, false}}},
      {"model_revisions",
       {{"id", K::kUuid, false},
        {"model_id", K::kUuid, false},
        {"revision_number", K::kInt, false},
        {"requested_revision", K::kText, false},
        {"commit_sha", K::kText, false},
        {"fingerprint", K::kText, false},
        {"family", K::kText, false},
        {"architecture", K::kText, false},
        {"files", K::kJson, false},
        {"bos_token_ids", K::kJson, false},
        {"eos_token_ids", K::kJson, false},
        {"parameter_count", K::kBigint, false},
        {"config_json", K::kText, false},
        {"create_time", K::kTime, false}}},
      {"datasets",
       {{"id", K::kUuid, false},
        {"name", K::kText, false},
        {"description", K::kText, false},
        {"source_type", K::kText, false},
        {"source", K::kText, false},
        {"create_time", K::kTime, false},
        {"update_time", K::kTime, false},
        {"config", K::kText, false}}},
      {"dataset_revisions",
       {{"id", K::kUuid, false},
        {"dataset_id", K::kUuid, false},
        {"revision_number", K::kInt, false},
        {"requested_revision", K::kText, false},
        {"commit_sha", K::kText, false},
        {"fingerprint", K::kText, false},
        {"format", K::kText, false},
        {"features", K::kJson, false},
        {"splits", K::kJson, false},
        {"preview", K::kJson, false},
        {"files", K::kJson, false},
        {"split_generated", K::kBool, false},
        {"split_seed", K::kBigint, false},
        {"test_size", K::kDouble, false},
        {"create_time", K::kTime, false},
        {"data_revision", K::kText, false},
        {"data_commit_sha", K::kText, false},
        {"available_configs", K::kJson, false}}},
      {"prompts",
       {{"id", K::kUuid, false},
        {"name", K::kText, false},
        {"revision_number", K::kInt, false},
        {"description", K::kText, false},
        {"dataset_revision_id", K::kUuid, false},
        {"mode", K::kText, false},
        {"input_template", K::kText, false},
        {"completion_template", K::kText, false},
        {"messages_column", K::kText, false},
        {"slots", K::kJson, false},
        {"fingerprint", K::kText, false},
        {"create_time", K::kTime, false},
        {"message_format", K::kText, false},
        {"instruction_column", K::kText, false},
        {"input_column", K::kText, false},
        {"output_column", K::kText, false},
        {"use_chat_template", K::kBool, false}}},
      {"configs",
       {{"id", K::kUuid, false},
        {"name", K::kText, true},
        {"description", K::kText, false},
        {"type", K::kText, false},
        {"content", K::kJson, false},
        {"fingerprint", K::kText, false},
        {"family", K::kText, false},
        {"is_default", K::kBool, false},
        {"create_time", K::kTime, false},
        {"update_time", K::kTime, false}}},
      {"adapters",
       {{"id", K::kUuid, false},
        {"name", K::kText, false},
        {"description", K::kText, false},
        {"source_type", K::kText, false},
        {"source", K::kText, false},
        {"commit_sha", K::kText, false},
        {"model_revision_id", K::kUuid, false},
        {"job_id", K::kUuid, true},
        {"peft_type", K::kText, false},
        {"rank", K::kInt, false},
        {"alpha", K::kDouble, false},
        {"target_modules", K::kJson, false},
        {"use_rslora", K::kBool, false},
        {"fingerprint", K::kText, false},
        {"files", K::kJson, false},
        {"create_time", K::kTime, false},
        {"update_time", K::kTime, false}}},
      {"fine_tuning_jobs",
       {{"id", K::kUuid, false},
        {"name", K::kText, false},
        {"description", K::kText, false},
        {"state", K::kText, false},
        {"model_id", K::kUuid, false},
        {"model_revision_id", K::kUuid, false},
        {"dataset_id", K::kUuid, true},
        {"dataset_revision_id", K::kUuid, true},
        {"prompt_id", K::kUuid, true},
        {"config_ids", K::kJson, false},
        {"settings", K::kJson, false},
        {"attempts", K::kInt, false},
        {"max_attempts", K::kInt, false},
        {"worker_id", K::kText, false},
        {"lease_expires_at", K::kTime, true},
        {"cancel_requested", K::kBool, false},
        {"progress", K::kJson, false},
        {"metrics", K::kJson, false},
        {"error_code", K::kText, false},
        {"error_message", K::kText, false},
        {"adapter_id", K::kUuid, true},
        {"adapter_name", K::kText, false},
        {"output_dir", K::kText, false},
        {"checkpoint_dir", K::kText, false},
        {"last_sequence", K::kBigint, false},
        {"create_time", K::kTime, false},
        {"update_time", K::kTime, false},
        {"start_time", K::kTime, true},
        {"end_time", K::kTime, true},
        {"kind", K::kText, false}}},
      {"evaluation_results",
       {{"job_id", K::kUuid, false},
        {"position", K::kInt, false},
        {"adapter_id", K::kUuid, true},
        {"adapter_name", K::kText, false},
        {"loss", K::kDouble, false},
        {"perplexity", K::kDouble, false},
        {"examples", K::kBigint, false},
        {"tokens", K::kBigint, false},
        {"label_tokens", K::kBigint, false},
        {"samples", K::kJson, false},
        {"generation_tokens_per_second", K::kDouble, false},
        {"create_time", K::kTime, false}}},
      {"model_exports",
       {{"id", K::kUuid, false},
        {"model_revision_id", K::kUuid, false},
        {"adapter_id", K::kUuid, false},
        {"type", K::kText, false},
        {"destination_path", K::kText, false},
        {"exported_model_name", K::kText, false},
        {"state", K::kText, false},
        {"create_time", K::kTime, false},
        {"update_time", K::kTime, false},
        {"job_id", K::kUuid, true},
        {"dtype", K::kText, false},
        {"max_shard_size", K::kBigint, false},
        {"overwrite", K::kBool, false},
        {"exported_model_id", K::kUuid, true},
        {"exported_model_revision_id", K::kUuid, true},
        {"error_code", K::kText, false},
        {"error_message", K::kText, false}}},
      {"job_events",
       {{"job_id", K::kUuid, false},
        {"sequence", K::kBigint, false},
        {"time", K::kTime, false},
        {"kind", K::kText, false},
        {"level", K::kText, false},
        {"message", K::kText, false},
        {"state", K::kText, false},
        {"progress", K::kJson, true},
        {"metrics", K::kJson, true}}},
      {"job_checkpoints",
       {{"id", K::kUuid, false},
        {"job_id", K::kUuid, false},
        {"step", K::kBigint, false},
        {"epoch", K::kInt, false},
        {"path", K::kText, false},
        {"train_loss", K::kDouble, false},
        {"attempt", K::kInt, false},
        {"create_time", K::kTime, false}}},
  };
  return *tables;
}

const Table* FindTable(const std::string& name) {
  for (const Table& t : Tables()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::string ColumnNames(const Table& table) {
  std::vector<std::string> names;
  for (const Column& c : table.columns) names.push_back(c.name);
  return absl::StrJoin(names, ", ");
}

// "string 'abc'", "number 5", "object" for messages.
std::string Describe(const json& value) {
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    return absl::StrCat("string '", s.size() > 40 ? s.substr(0, 40) + "..." : s, "'");
  }
  if (value.is_number() || value.is_boolean()) return absl::StrCat(value.type_name(), " ", value.dump());
  return value.type_name();
}

absl::Status CheckValue(const Column& column, const json& value, const std::string& where) {
  if (value.is_null()) {
    if (column.nullable) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(where, " is null; this column requires a value"));
  }
  auto wrong = [&](const char* expected) {
    return absl::InvalidArgumentError(absl::StrCat(where, " must be ", expected, "; got ", Describe(value)));
  };
  switch (column.kind) {
    case ColumnKind::kUuid:
      if (!value.is_string() || !IsUuid(value.get_ref<const std::string&>())) {
        return wrong("a UUID string such as '0b8e3a52-5c0f-4f1e-9d7a-2f6f3f1c1a10'");
      }
      return absl::OkStatus();
    case ColumnKind::kText:
      if (!value.is_string()) return wrong("a string");
      if (value.get_ref<const std::string&>().find('\0') != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(where, " contains a NUL character, which the database cannot store"));
      }
      return absl::OkStatus();
    case ColumnKind::kInt:
      if (!value.is_number_integer()) return wrong("a whole number");
      if (value.is_number_unsigned() ? value.get<uint64_t>() > std::numeric_limits<int32_t>::max()
                                     : (value.get<int64_t>() < std::numeric_limits<int32_t>::min() ||
                                        value.get<int64_t>() > std::numeric_limits<int32_t>::max())) {
        return wrong("a whole number between -2147483648 and 2147483647");
      }
      return absl::OkStatus();
    case ColumnKind::kBigint:
      if (!value.is_number_integer()) return wrong("a whole number");
      if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()}) {
        return wrong("a whole number that fits in 64 bits");
      }
      return absl::OkStatus();
    case ColumnKind::kDouble:
      if (!value.is_number()) return wrong("a number");
      return absl::OkStatus();
    case ColumnKind::kBool:
      if (!value.is_boolean()) return wrong("true or false");
      return absl::OkStatus();
    case ColumnKind::kJson:
      return absl::OkStatus();
    case ColumnKind::kTime: {
      absl::Time t;
      std::string err;
      if (!value.is_string() || !absl::ParseTime(absl::RFC3339_full, value.get_ref<const std::string&>(), &t, &err)) {
        return wrong("an RFC 3339 time such as '2024-05-01T12:00:00.123456+00:00'");
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRow(const Table& table, const json& row, size_t index) {
  const std::string where = absl::StrCat("document.tables.", table.name, "[", index, "]");
  if (!row.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, " must be an object of column values; got ", Describe(row)));
  }
  for (const auto& [key, value] : row.items()) {
    bool known = false;
    for (const Column& c : table.columns) known = known || key == c.name;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(where, " has unknown column '", key, "'; ", table.name,
                                                     " has the columns ", ColumnNames(table)));
    }
  }
  for (const Column& c : table.columns) {
    auto it = row.find(c.name);
    if (it == row.end()) {
      return absl::InvalidArgumentError(absl::StrCat(where, " lacks column '", c.name, "'; every row of ", table.name,
                                                     " needs all of ", ColumnNames(table)));
    }
    RETURN_IF_ERROR(CheckValue(c, *it, absl::StrCat(where, ".", c.name)));
  }
  return absl::OkStatus();
}

// Everything that can be checked without the database, except the tables.
absl::StatusOr<json> ParseDocument(const std::string& document, size_t max_bytes) {
  if (document.size() > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "document is ", document.size(), " bytes; ImportDatabase accepts at most ", max_bytes,
        " bytes (tuneforge-metadata --max-document-bytes); remove records you no longer need from the source "
        "database and export it again"));
  }
  if (document.empty()) {
    return absl::InvalidArgumentError("document is required: pass the text that ExportDatabase returned");
  }
  // Rows nest inside document.tables.<table>[i]: their values get kMaxJsonDepth levels, as everywhere else.
  RETURN_IF_ERROR(CheckJsonDepth(document, kMaxJsonDepth + 4, "document"));
  json doc;
  try {
    doc = json::parse(document);
  } catch (const json::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("document is not JSON: error at byte ", e.byte, ": ", e.what()));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("document is not JSON: ", e.what()));
  }
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "document must be a JSON object with format, schema_version and tables; got ", Describe(doc)));
  }
  for (const auto& [key, value] : doc.items()) {
    if (key != "format" && key != "schema_version" && key != "exported_at" && key != "row_counts" &&
        key != "tables") {
      return absl::InvalidArgumentError(absl::StrCat(
          "document has unknown key '", key, "'; a database document has format, schema_version, exported_at, "
          "row_counts and tables"));
    }
  }
  auto format = doc.find("format");
  if (format == doc.end() || !format->is_string() || *format != kDatabaseDocumentFormat) {
    return absl::InvalidArgumentError(absl::StrCat(
        "document.format is ", format == doc.end() ? "missing" : Describe(*format), "; expected '",
        kDatabaseDocumentFormat, "': pass a document written by ExportDatabase"));
  }
  auto version = doc.find("schema_version");
  if (version == doc.end() || !version->is_number_integer() || version->get<int64_t>() < 0 ||
      version->get<int64_t>() > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "document.schema_version is ", version == doc.end() ? "missing" : Describe(*version),
        "; expected the whole number that ExportDatabase wrote"));
  }
  auto exported_at = doc.find("exported_at");
  if (exported_at != doc.end() && !exported_at->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("document.exported_at must be an RFC 3339 string; got ", Describe(*exported_at)));
  }
  auto tables = doc.find("tables");
  if (tables == doc.end() || !tables->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "document.tables is ", tables == doc.end() ? "missing" : Describe(*tables),
        "; expected an object mapping table names to arrays of rows"));
  }
  return doc;
}

absl::Status CheckTables(const json& doc, const ImportContext& context) {
  const json& tables = doc.at("tables");
  for (const auto& [name, rows] : tables.items()) {
    const Table* table = FindTable(name);
    if (table == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("document.tables has unknown table '", name,
                                                     "'; the known tables are ",
                                                     absl::StrJoin(DatabaseDocumentTables(), ", ")));
    }
    if (!rows.is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat("document.tables.", name, " must be an array of rows; got ", Describe(rows)));
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      RETURN_IF_ERROR(CheckRow(*table, rows[i], i));
      RETURN_IF_ERROR(
          CheckImportedRecord(name, rows[i], absl::StrCat("document.tables.", name, "[", i, "]"), context));
    }
  }
  auto counts = doc.find("row_counts");
  if (counts == doc.end()) return absl::OkStatus();
  if (!counts->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("document.row_counts must be an object of table row counts; got ", Describe(*counts)));
  }
  for (const auto& [name, count] : counts->items()) {
    if (FindTable(name) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("document.row_counts has unknown table '", name,
                                                     "'; the known tables are ",
                                                     absl::StrJoin(DatabaseDocumentTables(), ", ")));
    }
    auto rows = tables.find(name);
    const size_t actual = rows == tables.end() ? 0 : rows->size();
    if (!count.is_number_integer() || count.get<int64_t>() < 0 || static_cast<size_t>(count.get<int64_t>()) != actual) {
      return absl::InvalidArgumentError(absl::StrCat(
          "document.row_counts.", name, " is ", Describe(count), " but document.tables.", name, " has ", actual,
          " rows; the document was truncated or edited: export the database again"));
    }
  }
  return absl::OkStatus();
}

// The database's own message, cut to a readable length (a refused row's DETAIL repeats the whole row).
std::string Shorten(absl::string_view message) {
  constexpr size_t kMax = 400;
  if (message.size() <= kMax) return std::string(message);
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 char
  return absl::StrCat(message.substr(0, cut), "...");
}

// Adds what the table and the cause mean for the user to a database error raised while importing `table`.
absl::Status ImportError(const absl::Status& status, const std::string& table) {
  if (table.empty()) return status;  // failed before any table, e.g. the database is unreachable
  const std::string prefix = absl::StrCat("document.tables.", table, ": ");
  const std::string cause = Shorten(status.message());
  switch (status.code()) {
    case absl::StatusCode::kAlreadyExists:
      return absl::AlreadyExistsError(absl::StrCat(
          prefix, "a row conflicts with a record already in the database or with another row of the document "
          "(same id or unique name) (", cause, "); import into an empty database or remove the conflicting "
          "records first; nothing was imported"));
    case absl::StatusCode::kFailedPrecondition:
      return absl::FailedPreconditionError(absl::StrCat(
          prefix, "a row refers to a record that is neither in the document nor in the database (", cause,
          "); include the referenced records in the document; nothing was imported"));
    case absl::StatusCode::kInvalidArgument:
      return absl::InvalidArgumentError(absl::StrCat(prefix, "the database refused a row (", cause,
                                                     "); fix the row or export again; nothing was imported"));
    default:
      return absl::Status(status.code(), absl::StrCat(prefix, cause, "; nothing was imported"));
  }
}

}  // namespace

const std::vector<std::string>& DatabaseDocumentTables() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>();
    for (const Table& t : Tables()) v->push_back(t.name);
    return v;
  }();
  return *names;
}

absl::Status StreamedDocument::Add(int64_t document_bytes, absl::string_view data) {
  ++messages_;
  if (messages_ == 1) {
    if (document_bytes <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the first message of the stream must set chunk.document_bytes to the size of the whole document in bytes; "
          "got ", document_bytes));
    }
    if (static_cast<uint64_t>(document_bytes) > max_document_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "document is ", document_bytes, " bytes; ImportDatabaseStream accepts at most ", max_document_bytes_,
          " bytes (tuneforge-metadata --max-document-bytes); remove records you no longer need from the source "
          "database and export it again"));
    }
    // Memory grows with what arrives, not with what a client declares.
    declared_bytes_ = document_bytes;
  } else if (document_bytes != 0 && document_bytes != declared_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat("message ", messages_, " of the stream sets chunk.document_bytes to ",
                                                   document_bytes, " but the first message declared ", declared_bytes_,
                                                   "; set it in the first message only"));
  }
  if (data.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message ", messages_, " of the stream has no chunk.data; every message carries the next piece of the "
        "document (1 MiB each)"));
  }
  const size_t total = document_.size() + data.size();
  if (total > max_document_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the stream is past ", max_document_bytes_, " bytes at message ", messages_, "; ImportDatabaseStream accepts "
        "documents of at most ", max_document_bytes_, " bytes (tuneforge-metadata --max-document-bytes)"));
  }
  if (total > static_cast<uint64_t>(declared_bytes_)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message ", messages_, " of the stream brings the document to ", total, " bytes, past the ", declared_bytes_,
        " bytes its first message declared (chunk.document_bytes); declare the whole document's size"));
  }
  document_.append(data.data(), data.size());
  return absl::OkStatus();
}

absl::StatusOr<std::string> StreamedDocument::Finish() && {
  if (messages_ == 0) {
    return absl::InvalidArgumentError(
        "the stream carried no document: send it in pieces, the first message setting chunk.document_bytes");
  }
  if (document_.size() != static_cast<uint64_t>(declared_bytes_)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the stream ended after ", document_.size(), " of the ", declared_bytes_, " bytes its first message declared "
        "(chunk.document_bytes): the client stopped early, or a message could not be read as an "
        "ImportDatabaseStreamRequest; nothing was imported"));
  }
  return std::move(document_);
}

AdminService::AdminService(Store& store, const AllowedRoots& roots, std::string artifacts_dir,
                           size_t max_document_bytes)
    : store_(store), roots_(roots), artifacts_dir_(std::move(artifacts_dir)), max_document_bytes_(max_document_bytes) {}

absl::StatusOr<DatabaseExport> AdminService::ExportDatabase() {
  int schema_version = 0;
  std::vector<TableRows> rows;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    rows.clear();
    admin_.UseOneSnapshot(tx);
    schema_version = admin_.SchemaVersion(tx);
    for (const Table& t : Tables()) rows.push_back(admin_.ExportTable(tx, t.name));
    return absl::OkStatus();
  }));

  DatabaseExport out;
  const json exported_at = absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone());
  json counts = json::object();
  for (size_t i = 0; i < Tables().size(); ++i) {
    out.row_counts[Tables()[i].name] = rows[i].row_count;
    counts[Tables()[i].name] = rows[i].row_count;
  }
  // Written as text so that the rows keep the database's own JSON, and the keys a readable order.
  std::string& doc = out.document;
  absl::StrAppend(&doc, "{\"format\": ", json(kDatabaseDocumentFormat).dump(), ", \"schema_version\": ",
                  schema_version, ", \"exported_at\": ", exported_at.dump(), ",\n\"row_counts\": ", counts.dump(),
                  ",\n\"tables\": {");
  for (size_t i = 0; i < Tables().size(); ++i) {
    absl::StrAppend(&doc, i == 0 ? "\n" : ",\n", json(Tables()[i].name).dump(), ": ", rows[i].rows_json);
    rows[i].rows_json.clear();
    rows[i].rows_json.shrink_to_fit();
  }
  doc += "\n}}\n";
  if (doc.size() > max_document_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the database document is ", doc.size(), " bytes, over the ", max_document_bytes_,
        " bytes that ImportDatabase accepts (tuneforge-metadata --max-document-bytes); remove records you no "
        "longer need (old revisions, adapters), or back the database up with pg_dump instead"));
  }
  return out;
}

absl::StatusOr<std::map<std::string, int64_t>> AdminService::ImportDatabase(const std::string& document) {
  ASSIGN_OR_RETURN(json doc, ParseDocument(document, max_document_bytes_));

  int server_version = 0;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    server_version = admin_.SchemaVersion(tx);
    return absl::OkStatus();
  }));
  const int64_t document_version = doc.at("schema_version").get<int64_t>();
  if (document_version != server_version) {
    return absl::FailedPreconditionError(absl::StrCat(
        "document.schema_version is ", document_version, " but this server's database is at schema version ",
        server_version, "; ",
        document_version < server_version
            ? absl::StrCat("upgrade the server that exported it to schema version ", server_version,
                           " (starting the newer tuneforge-metadata applies the migrations) and export again")
            : absl::StrCat("upgrade this server to a tuneforge-metadata release with schema version ",
                           document_version, ", or import into a server at that version")));
  }
  RETURN_IF_ERROR(CheckTables(doc, ImportContext{roots_, artifacts_dir_}));

  const json& tables = doc.at("tables");
  std::map<std::string, int64_t> counts;
  std::string current_table;
  absl::Status status = store_.InTransaction([&](Tx& tx) -> absl::Status {
    counts.clear();
    counts[kSkippedDefaultConfigs] = 0;
    for (const Table& t : Tables()) {
      current_table = t.name;
      counts[t.name] = 0;
      auto rows = tables.find(t.name);
      if (rows == tables.end() || rows->empty()) continue;
      const int64_t inserted = admin_.ImportTable(tx, t.name, rows->dump());
      counts[t.name] = inserted;
      if (t.name == "configs") counts[kSkippedDefaultConfigs] = static_cast<int64_t>(rows->size()) - inserted;
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return ImportError(status, current_table);
  return counts;
}

}  // namespace tuneforge
