// Text and JSON rendering of responses by reflection, so every resource shares one table and one record printer.
#include "services/cli/output.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "services/cli/request_binding.h"

namespace tuneforge::cli {

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

bool IsShownInline(const Descriptor& type) {
  const std::string& name = type.full_name();
  return name == "google.protobuf.Timestamp" || name == "google.protobuf.Struct" || name == "google.protobuf.Value" ||
         name == "google.protobuf.ListValue" || name == "google.protobuf.Duration";
}

std::string FormatDouble(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.6g", value);
  return buffer;
}

// Strings with line breaks or quotes are shown JSON-escaped, so that one field stays on one line.
std::string FormatString(const std::string& text) {
  if (text.find_first_of("\n\r\t\"") == std::string::npos) return text;
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string FormatWellKnown(const Message& message) {
  const Descriptor* type = message.GetDescriptor();
  if (type->full_name() == "google.protobuf.Timestamp") {
    const Reflection* reflection = message.GetReflection();
    int64_t seconds = reflection->GetInt64(message, type->FindFieldByName("seconds"));
    if (seconds == 0) return "";
    return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(seconds), absl::UTCTimeZone());
  }
  // Struct maps come out in no particular order; re-dumped, the keys are sorted.
  nlohmann::json json = nlohmann::json::parse(ToJson(message, /*pretty=*/false), nullptr, /*allow_exceptions=*/false);
  return json.is_discarded() ? ToJson(message, /*pretty=*/false)
                             : json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string InlineMessage(const Message& message);

std::string FormatScalar(const Message& message, const FieldDescriptor* field, int index) {
  const Reflection* r = message.GetReflection();
  const bool repeated = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(repeated ? r->GetRepeatedInt32(message, field, index) : r->GetInt32(message, field));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(repeated ? r->GetRepeatedInt64(message, field, index) : r->GetInt64(message, field));
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrCat(repeated ? r->GetRepeatedUInt32(message, field, index) : r->GetUInt32(message, field));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(repeated ? r->GetRepeatedUInt64(message, field, index) : r->GetUInt64(message, field));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return FormatDouble(repeated ? r->GetRepeatedDouble(message, field, index) : r->GetDouble(message, field));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return FormatDouble(repeated ? r->GetRepeatedFloat(message, field, index) : r->GetFloat(message, field));
    case FieldDescriptor::CPPTYPE_BOOL:
      return (repeated ? r->GetRepeatedBool(message, field, index) : r->GetBool(message, field)) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return ShortEnumName(*(repeated ? r->GetRepeatedEnum(message, field, index) : r->GetEnum(message, field)));
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string value = repeated ? r->GetRepeatedString(message, field, index) : r->GetString(message, field);
      if (field->type() == FieldDescriptor::TYPE_BYTES) return absl::StrCat("<", value.size(), " bytes>");
      return FormatString(value);
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      const Message& sub = repeated ? r->GetRepeatedMessage(message, field, index) : r->GetMessage(message, field);
      return IsShownInline(*sub.GetDescriptor()) ? FormatWellKnown(sub) : InlineMessage(sub);
    }
  }
  return "";
}

std::string FormatField(const Message& message, const FieldDescriptor* field) {
  if (!field->is_repeated()) return FormatScalar(message, field, -1);
  std::vector<std::string> items;
  for (int i = 0; i < message.GetReflection()->FieldSize(message, field); ++i) {
    items.push_back(FormatScalar(message, field, i));
  }
  return absl::StrJoin(items, ", ");
}

// "path=config.json  size=612  sha256=ab12..." for items of repeated message fields.
std::string InlineMessage(const Message& message) {
  std::vector<const FieldDescriptor*> fields;
  message.GetReflection()->ListFields(message, &fields);
  std::vector<std::string> parts;
  for (const FieldDescriptor* field : fields) {
    parts.push_back(absl::StrCat(field->name(), "=", FormatField(message, field)));
  }
  return absl::StrJoin(parts, "  ");
}

void AppendRecord(const Message& message, const std::string& prefix, int indent, const std::vector<std::string>& hidden,
                  std::string* out) {
  const Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  const std::string pad(indent, ' ');
  for (const FieldDescriptor* field : fields) {
    const std::string path = prefix.empty() ? field->name() : absl::StrCat(prefix, ".", field->name());
    if (std::find(hidden.begin(), hidden.end(), path) != hidden.end()) continue;
    const bool composite =
        field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !IsShownInline(*field->message_type());
    if (field->is_map()) {
      // Map entries come in no particular order; show them sorted by key.
      std::vector<std::pair<std::string, std::string>> entries;
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        const Message& entry = reflection->GetRepeatedMessage(message, field, i);
        const Descriptor* type = entry.GetDescriptor();
        entries.emplace_back(FormatScalar(entry, type->FindFieldByName("key"), -1),
                             FormatScalar(entry, type->FindFieldByName("value"), -1));
      }
      std::sort(entries.begin(), entries.end());
      absl::StrAppend(out, pad, field->name(), ":\n");
      for (const auto& [key, value] : entries) absl::StrAppend(out, pad, "  ", key, ": ", value, "\n");
    } else if (field->is_repeated() && composite) {
      absl::StrAppend(out, pad, field->name(), ": (", reflection->FieldSize(message, field), ")\n");
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        absl::StrAppend(out, pad, "  - ", InlineMessage(reflection->GetRepeatedMessage(message, field, i)), "\n");
      }
    } else if (composite) {
      std::string block;
      AppendRecord(reflection->GetMessage(message, field), path, indent + 2, hidden, &block);
      if (!block.empty()) absl::StrAppend(out, pad, field->name(), ":\n", block);
    } else if (std::string value = FormatField(message, field); !value.empty()) {
      absl::StrAppend(out, pad, field->name(), ": ", value, "\n");
    }
  }
}

// Replaces "{path}" with that field of `response` and "{}" with `first_arg`.
std::string ExpandHeadline(const std::string& headline, const Message& response, const std::string& first_arg) {
  std::string out;
  for (size_t i = 0; i < headline.size(); ++i) {
    size_t close = headline[i] == '{' ? headline.find('}', i) : std::string::npos;
    if (close == std::string::npos) {
      out.push_back(headline[i]);
      continue;
    }
    const std::string path = headline.substr(i + 1, close - i - 1);
    absl::StrAppend(&out, path.empty() ? first_arg : FormatPath(response, path));
    i = close;
  }
  return out;
}

}  // namespace

std::string ToJson(const Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return nlohmann::json({{"cli_error", status.ToString()}}).dump();
  if (pretty && !json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

std::string FormatPath(const Message& message, const std::string& path) {
  const Message* current = &message;
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* field = current->GetDescriptor()->FindFieldByName(parts[i]);
    if (field == nullptr) return absl::StrCat("<no field ", path, ">");
    const Reflection* reflection = current->GetReflection();
    if (i + 1 == parts.size()) {
      if (field->has_presence() && !field->is_repeated() && !reflection->HasField(*current, field)) return "";
      return FormatField(*current, field);
    }
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) return absl::StrCat("<no field ", path, ">");
    if (field->is_repeated()) {  // "results.0.loss": an element by its index
      int index = 0;
      if (++i + 1 == parts.size() || !absl::SimpleAtoi(parts[i], &index) || index < 0) {
        return absl::StrCat("<no field ", path, ">");
      }
      if (index >= reflection->FieldSize(*current, field)) return "";
      current = &reflection->GetRepeatedMessage(*current, field, index);
      continue;
    }
    if (!reflection->HasField(*current, field)) return "";
    current = &reflection->GetMessage(*current, field);
  }
  return "";
}

std::string RenderRecord(const Message& record, const std::vector<std::string>& hidden) {
  std::string out;
  AppendRecord(record, "", 0, hidden, &out);
  return out;
}

std::string RenderTable(const std::vector<const Message*>& rows, const std::vector<Column>& columns) {
  std::vector<std::vector<std::string>> cells;
  std::vector<std::string> header;
  for (const Column& column : columns) header.push_back(column.header);
  cells.push_back(header);
  for (const Message* row : rows) {
    std::vector<std::string> line;
    for (const Column& column : columns) line.push_back(FormatPath(*row, column.path));
    cells.push_back(std::move(line));
  }
  std::vector<size_t> widths(columns.size(), 0);
  for (const auto& line : cells) {
    for (size_t c = 0; c < line.size(); ++c) widths[c] = std::max(widths[c], line[c].size());
  }
  std::string out;
  for (const auto& line : cells) {
    std::string text;
    for (size_t c = 0; c < line.size(); ++c) {
      absl::StrAppend(&text, line[c]);
      if (c + 1 < line.size()) text.append(widths[c] - line[c].size() + 2, ' ');
    }
    text.erase(text.find_last_not_of(' ') + 1);
    absl::StrAppend(&out, text, "\n");
  }
  return out;
}

void PrintResponse(const CommandContext& context, const Message& response, const View& view,
                   const std::string& first_arg) {
  std::ostream& out = *context.out;
  if (context.global.json) {
    out << ToJson(response, /*pretty=*/true) << "\n";
    return;
  }
  if (!view.headline.empty()) out << ExpandHeadline(view.headline, response, first_arg) << "\n";
  const Descriptor* type = response.GetDescriptor();
  const Reflection* reflection = response.GetReflection();
  const FieldDescriptor* record = view.record.empty() ? nullptr : type->FindFieldByName(view.record);
  if (record == nullptr) {
    out << RenderRecord(response, view.hidden);
  } else if (!view.columns.empty()) {
    std::vector<const Message*> rows;
    for (int i = 0; i < reflection->FieldSize(response, record); ++i) {
      rows.push_back(&reflection->GetRepeatedMessage(response, record, i));
    }
    if (rows.empty()) {
      out << "no " << record->name() << " found\n";
    } else {
      out << RenderTable(rows, view.columns);
    }
    if (const FieldDescriptor* token = type->FindFieldByName("next_page_token"); token != nullptr) {
      const std::string next = reflection->GetString(response, token);
      if (!next.empty()) out << "more results: add --page-token " << next << "\n";
    }
  } else {
    out << RenderRecord(reflection->GetMessage(response, record), view.hidden);
  }
  out.flush();
}

void PrintError(std::ostream& err, const absl::Status& status) {
  err << "error: " << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
}

}  // namespace tuneforge::cli
