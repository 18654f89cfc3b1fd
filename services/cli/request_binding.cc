// Sets request fields by reflection from the parsed arguments: scalars, enums, local paths, Hub repos,
// secret files and google.protobuf.Struct documents built from JSON files and key=value pairs.
#include "services/cli/request_binding.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace tuneforge::cli {

namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr char kStructType[] = "google.protobuf.Struct";

std::string Label(const Option& option, bool positional) {
  return positional ? option.name : absl::StrCat("--", option.name);
}

// A wrong field path is a bug in the command table, not in what the user typed.
absl::Status TableError(const std::string& path, const Descriptor& type) {
  return absl::InternalError(absl::StrCat("command table names field '", path, "' that ", type.full_name(),
                                          " does not have; please report this"));
}

// Refuses to switch a oneof that an earlier option already set (a local PATH and --hf, say).
absl::Status CheckOneof(const Message& message, const FieldDescriptor* field, const std::string& label) {
  const google::protobuf::OneofDescriptor* oneof = field->containing_oneof();
  if (oneof == nullptr) return absl::OkStatus();
  const FieldDescriptor* set = message.GetReflection()->GetOneofFieldDescriptor(message, oneof);
  if (set == nullptr || set == field) return absl::OkStatus();
  return UsageError(absl::StrCat(label, " (", field->name(), " ", oneof->name(), ") cannot be combined with the ",
                                 "options that give a ", set->name(), " ", oneof->name()));
}

// The message holding the last part of a dotted field path, creating the messages on the way. `label` names
// the option in errors.
absl::StatusOr<std::pair<Message*, const FieldDescriptor*>> ResolveField(Message* root, const std::string& path,
                                                                         const std::string& label) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  Message* message = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const FieldDescriptor* field = message->GetDescriptor()->FindFieldByName(parts[i]);
    if (field == nullptr || field->is_repeated() || field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return TableError(path, *root->GetDescriptor());
    }
    if (absl::Status status = CheckOneof(*message, field, label); !status.ok()) return status;
    message = message->GetReflection()->MutableMessage(message, field);
  }
  const FieldDescriptor* field = message->GetDescriptor()->FindFieldByName(parts.back());
  if (field == nullptr) return TableError(path, *root->GetDescriptor());
  if (absl::Status status = CheckOneof(*message, field, label); !status.ok()) return status;
  return std::make_pair(message, field);
}

// Whether the message at a dotted path is set, without creating anything.
bool IsSet(const Message& root, const std::string& path) {
  const Message* message = &root;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    const FieldDescriptor* field = message->GetDescriptor()->FindFieldByName(std::string(part));
    if (field == nullptr || field->is_repeated() || field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
        !message->GetReflection()->HasField(*message, field)) {
      return false;
    }
    message = &message->GetReflection()->GetMessage(*message, field);
  }
  return true;
}

std::string EnumChoices(const EnumDescriptor& type) {
  std::vector<std::string> names;
  for (int i = 0; i < type.value_count(); ++i) {
    if (type.value(i)->number() != 0) names.push_back(absl::AsciiStrToLower(ShortEnumName(*type.value(i))));
  }
  return absl::StrJoin(names, ", ");
}

absl::Status SetValue(Message* message, const FieldDescriptor* field, const std::string& label,
                      const std::string& text) {
  const google::protobuf::Reflection* reflection = message->GetReflection();
  const bool repeated = field->is_repeated();
  auto not_a = [&](const char* what) { return UsageError(absl::StrCat(label, " '", text, "' is not ", what)); };
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      repeated ? reflection->AddString(message, field, text) : reflection->SetString(message, field, text);
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t v = 0;
      if (!absl::SimpleAtoi(text, &v)) return not_a("a whole number");
      repeated ? reflection->AddInt32(message, field, v) : reflection->SetInt32(message, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v = 0;
      if (!absl::SimpleAtoi(text, &v)) return not_a("a whole number");
      repeated ? reflection->AddInt64(message, field, v) : reflection->SetInt64(message, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v = 0;
      if (!absl::SimpleAtoi(text, &v)) return not_a("a whole number >= 0");
      repeated ? reflection->AddUInt64(message, field, v) : reflection->SetUInt64(message, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double v = 0;
      if (!absl::SimpleAtod(text, &v)) return not_a("a number");
      repeated ? reflection->AddDouble(message, field, v) : reflection->SetDouble(message, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      if (text != "true" && text != "false") return not_a("true or false");
      reflection->SetBool(message, field, text == "true");
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_ENUM: {
      absl::StatusOr<int> v = ParseEnum(*field->enum_type(), text);
      if (!v.ok()) return not_a(absl::StrCat("one of: ", EnumChoices(*field->enum_type())).c_str());
      repeated ? reflection->AddEnumValue(message, field, *v) : reflection->SetEnumValue(message, field, *v);
      return absl::OkStatus();
    }
    default:
      return absl::InternalError(absl::StrCat("field ", field->full_name(), " cannot be set from ", label));
  }
}

absl::StatusOr<std::string> ReadFile(const std::string& label, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return UsageError(absl::StrCat("cannot read ", label, " '", path, "': ", std::strerror(errno)));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Sets `json` at the dotted `key`, creating objects on the way.
absl::Status SetJsonPath(nlohmann::json* json, const std::string& label, const std::string& key, nlohmann::json value) {
  nlohmann::json* node = json;
  std::vector<std::string> parts = absl::StrSplit(key, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty()) return UsageError(absl::StrCat(label, " key '", key, "' has an empty part"));
    if (!node->is_object()) *node = nlohmann::json::object();
    node = &(*node)[parts[i]];
  }
  *node = std::move(value);
  return absl::OkStatus();
}

// The Struct fields a request has, for "--set key=value" with no fixed field ("lora.", "training.").
std::vector<std::string> StructFields(const Descriptor& type) {
  std::vector<std::string> names;
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor* field = type.field(i);
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && field->message_type()->full_name() == kStructType) {
      names.push_back(field->name());
    }
  }
  return names;
}

// Struct documents are collected as JSON first so that a --file and --set pairs merge, then converted once.
using StructDocs = std::map<std::string, nlohmann::json>;

absl::Status BindKeyValue(const Option& option, const std::string& label, const std::string& text,
                          const Message& request, StructDocs* docs) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return UsageError(absl::StrCat(label, " '", text, "' is not key=value (e.g. ", label, " r=8)"));
  }
  std::string key = text.substr(0, eq);
  const std::string raw = text.substr(eq + 1);
  // Numbers, booleans and lists as JSON; anything else ("cosine", "all-linear") as a string.
  nlohmann::json value = nlohmann::json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = raw;
  std::string field = option.field;
  if (field.empty()) {
    std::vector<std::string> sections = StructFields(*request.GetDescriptor());
    size_t dot = key.find('.');
    std::string section = key.substr(0, dot);
    if (dot == std::string::npos || std::find(sections.begin(), sections.end(), section) == sections.end()) {
      return UsageError(absl::StrCat(label, " key '", key, "' must start with ", absl::StrJoin(sections, ". or "),
                                     ". (e.g. ", label, " ", sections.empty() ? "" : sections[0], ".r=8)"));
    }
    field = section;
    key = key.substr(dot + 1);
  }
  return SetJsonPath(&(*docs)[field], label, key, std::move(value));
}

absl::Status BindJsonFile(const Option& option, const std::string& label, const std::string& path, StructDocs* docs) {
  absl::StatusOr<std::string> text = ReadFile(label, path);
  if (!text.ok()) return text.status();
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return UsageError(
        absl::StrCat(label, " '", path, "' must hold one JSON object, e.g. {\"r\": 8, \"lora_alpha\": 16}"));
  }
  nlohmann::json& target = (*docs)[option.field];
  if (!target.is_object()) target = nlohmann::json::object();
  for (auto& [key, value] : doc.items()) target[key] = value;
  return absl::OkStatus();
}

absl::Status BindOne(const Option& option, bool positional, const std::string& text, Message* request,
                     StructDocs* docs) {
  const std::string label = Label(option, positional);
  switch (option.binding) {
    case Binding::kNone:
      return absl::OkStatus();
    case Binding::kKeyValue:
      return BindKeyValue(option, label, text, *request, docs);
    case Binding::kJsonFile:
      return BindJsonFile(option, label, text, docs);
    case Binding::kHubRepo: {
      std::vector<std::string> parts = absl::StrSplit(text, absl::MaxSplits('@', 1));
      if (parts[0].empty() || (parts.size() > 1 && parts[1].empty())) {
        return UsageError(absl::StrCat(label, " '", text, "' is not a Hub repo: write org/name or org/name@revision"));
      }
      auto repo = ResolveField(request, absl::StrCat(option.field, ".repo_id"), label);
      if (!repo.ok()) return repo.status();
      repo->first->GetReflection()->SetString(repo->first, repo->second, parts[0]);
      if (parts.size() > 1) {
        auto revision = ResolveField(request, absl::StrCat(option.field, ".revision"), label);
        if (!revision.ok()) return revision.status();
        revision->first->GetReflection()->SetString(revision->first, revision->second, parts[1]);
      }
      return absl::OkStatus();
    }
    case Binding::kSecretFile: {
      // Only for the source its field belongs to (--token-file with --hf), never switching the source.
      const std::string parent = option.field.substr(0, option.field.rfind('.'));
      if (!IsSet(*request, parent)) {
        return UsageError(absl::StrCat(label, " only applies to a ", parent, " source"));
      }
      absl::StatusOr<std::string> secret = ReadFile(label, text);
      if (!secret.ok()) return secret.status();
      std::string token(absl::StripAsciiWhitespace(*secret));
      if (token.empty()) return UsageError(absl::StrCat(label, " '", text, "' is empty"));
      auto target = ResolveField(request, option.field, label);
      if (!target.ok()) return target.status();
      target->first->GetReflection()->SetString(target->first, target->second, token);
      return absl::OkStatus();
    }
    case Binding::kLocalPath:
    case Binding::kField: {
      auto target = ResolveField(request, option.field, label);
      if (!target.ok()) return target.status();
      std::vector<std::string> values;
      if (target->second->is_repeated()) {
        for (absl::string_view value : absl::StrSplit(text, ',', absl::SkipWhitespace())) values.emplace_back(value);
      } else {
        values.push_back(text);
      }
      for (std::string& value : values) {
        if (option.binding == Binding::kLocalPath) {
          std::error_code error;
          std::filesystem::path absolute = std::filesystem::absolute(value, error);
          if (error) return UsageError(absl::StrCat(label, " '", value, "': ", error.message()));
          value = absolute.lexically_normal().string();
        }
        if (absl::Status status = SetValue(target->first, target->second, label, value); !status.ok()) return status;
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string ShortEnumName(const google::protobuf::EnumValueDescriptor& value) {
  // JobState -> "JOB_STATE_".
  std::string prefix;
  for (char c : value.type()->name()) {
    if (absl::ascii_isupper(static_cast<unsigned char>(c)) && !prefix.empty()) prefix.push_back('_');
    prefix.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
  }
  prefix.push_back('_');
  return absl::StartsWith(value.name(), prefix) ? value.name().substr(prefix.size()) : value.name();
}

absl::StatusOr<int> ParseEnum(const EnumDescriptor& type, const std::string& text) {
  const std::string wanted = absl::StrReplaceAll(absl::AsciiStrToUpper(text), {{"-", "_"}});
  for (int i = 0; i < type.value_count(); ++i) {
    const google::protobuf::EnumValueDescriptor* value = type.value(i);
    if (value->number() != 0 && (value->name() == wanted || ShortEnumName(*value) == wanted)) return value->number();
  }
  return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not one of: ", EnumChoices(type)));
}

absl::Status BindRequest(const Command& command, const ParsedArgs& args, Message* request) {
  StructDocs docs;
  for (bool positional : {true, false}) {
    for (const Option& option : positional ? command.args : command.flags) {
      auto it = args.values.find(option.name);
      if (it == args.values.end()) continue;
      for (const std::string& value : it->second) {
        if (absl::Status status = BindOne(option, positional, value, request, &docs); !status.ok()) return status;
      }
    }
  }
  // A Hub source with no --token-file takes HF_TOKEN from the environment.
  const char* env_token = std::getenv("HF_TOKEN");
  for (const Option& flag : command.flags) {
    if (flag.binding != Binding::kSecretFile || args.Has(flag.name) || env_token == nullptr || *env_token == '\0') {
      continue;
    }
    const std::string parent = flag.field.substr(0, flag.field.rfind('.'));
    if (!IsSet(*request, parent)) continue;
    auto target = ResolveField(request, flag.field, "HF_TOKEN");
    if (!target.ok()) return target.status();
    target->first->GetReflection()->SetString(target->first, target->second, env_token);
  }
  for (const auto& [field, doc] : docs) {
    auto target = ResolveField(request, field, field);
    if (!target.ok()) return target.status();
    const FieldDescriptor* descriptor = target->second;
    if (descriptor->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
        descriptor->message_type()->full_name() != kStructType) {
      return TableError(field, *request->GetDescriptor());
    }
    Message* message = target->first->GetReflection()->MutableMessage(target->first, descriptor);
    auto converted = google::protobuf::util::JsonStringToMessage(doc.dump(), message);
    if (!converted.ok()) {
      return UsageError(absl::StrCat("cannot use the values given for '", field, "': ", converted.ToString()));
    }
  }
  return absl::OkStatus();
}

}  // namespace tuneforge::cli
