// Configs: validate a document against its type's schema, then store it once (identical type + content
// returns the existing config); list per-family defaults for a model; refuse to remove defaults.
#include "services/metadata/config_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/json_limits.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "services/metadata/config_schema.h"
#include "services/metadata/job_repository.h"
#include "services/metadata/request_checks.h"

namespace tuneforge {

namespace {

constexpr size_t kMaxContentBytes = 64u << 10;
// Config documents are flat (a list of module names at most); deeper content is refused before it is parsed.
constexpr int kMaxContentDepth = 8;
constexpr char kPageKind[] = "configs";

absl::Status CheckType(const std::string& type, const std::string& field, bool required) {
  if (type.empty() && !required) return absl::OkStatus();
  if (IsConfigType(type)) return absl::OkStatus();
  const std::string accepted = absl::StrJoin(ConfigTypeNames(), ", ");
  if (type.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required: one of ", accepted));
  }
  return absl::InvalidArgumentError(absl::StrCat(field, " '", type, "' is not a config type; use one of ", accepted));
}

absl::StatusOr<std::string> CanonicalContent(const std::string& type, const std::string& content_json) {
  if (content_json.size() > kMaxContentBytes) {
    return absl::InvalidArgumentError(absl::StrCat("content is ", content_json.size(),
                                                   " bytes as JSON; the limit is ", kMaxContentBytes));
  }
  RETURN_IF_ERROR(CheckJsonDepth(content_json, kMaxContentDepth, "content"));
  nlohmann::json content = nlohmann::json::parse(content_json, nullptr, /*allow_exceptions=*/false);
  if (content.is_discarded()) {
    return absl::InvalidArgumentError("content is not a JSON object; send a google.protobuf.Struct");
  }
  ASSIGN_OR_RETURN(nlohmann::json normalised, ValidateConfigContent(type, content, "content"));
  return normalised.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::Status NotFoundConfig(const std::string& ref) {
  return absl::NotFoundError(absl::StrCat("config '", ref, "' not found; ListConfigs shows the configs that exist"));
}

std::string Label(const ConfigRecord& c) { return c.name.empty() ? c.id : absl::StrCat("'", c.name, "'"); }

}  // namespace

ConfigService::ConfigService(Store& store) : store_(store) {}

absl::StatusOr<AddConfigResult> ConfigService::AddConfig(const AddConfigInput& input) {
  RETURN_IF_ERROR(CheckType(input.type, "type", /*required=*/true));
  if (!input.name.empty()) RETURN_IF_ERROR(CheckName(input.name, "name"));
  RETURN_IF_ERROR(CheckDescription(input.description, "description"));
  ASSIGN_OR_RETURN(std::string content, CanonicalContent(input.type, input.content_json));

  AddConfigResult result;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    const std::string fingerprint = configs_.Fingerprint(tx, input.type, content);
    if (!input.name.empty()) {
      if (std::optional<ConfigRecord> named = configs_.GetByName(tx, input.name)) {
        if (named->type == input.type && named->fingerprint == fingerprint) {
          result.config = *named;
          result.outcome = AddOutcome::kExisting;
          return absl::OkStatus();
        }
        return absl::AlreadyExistsError(absl::StrCat(
            "config '", input.name, "' already exists (", named->id, ") as a ", named->type,
            " config with different content; choose another name, or GetConfig it to see its content"));
      }
    }
    if (std::optional<ConfigRecord> same = configs_.FindUserConfig(tx, input.type, fingerprint)) {
      result.config = *same;
      result.outcome = AddOutcome::kExisting;
      return absl::OkStatus();
    }
    ConfigRecord wanted;
    wanted.name = input.name;
    wanted.description = input.description;
    wanted.type = input.type;
    wanted.content = content;
    std::optional<ConfigRecord> inserted = configs_.Insert(tx, wanted);
    if (!inserted.has_value()) {
      // A concurrent AddConfig stored the same content first.
      inserted = configs_.FindUserConfig(tx, input.type, fingerprint);
      if (!inserted.has_value()) {
        return absl::AbortedError("the config changed while it was being added; retry the call");
      }
      result.outcome = AddOutcome::kExisting;
    } else {
      result.outcome = AddOutcome::kCreated;
    }
    result.config = *inserted;
    return absl::OkStatus();
  }));
  if (!input.name.empty() && result.config.name != input.name) result.ignored_name = input.name;
  return result;
}

absl::StatusOr<ConfigRecord> ConfigService::FindConfig(Tx& tx, const std::string& ref) {
  std::optional<ConfigRecord> config = IsUuid(ref) ? configs_.GetById(tx, ref) : configs_.GetByName(tx, ref);
  if (!config.has_value()) return NotFoundConfig(ref);
  return *config;
}

absl::StatusOr<ConfigRecord> ConfigService::GetConfig(const std::string& ref) {
  RETURN_IF_ERROR(CheckReference(ref, "config"));
  ConfigRecord config;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(config, FindConfig(tx, ref));
    return absl::OkStatus();
  }));
  return config;
}

absl::StatusOr<ConfigPage> ConfigService::ListConfigs(const ListConfigsInput& input) {
  ASSIGN_OR_RETURN(PageRequest page, ParsePage(input.page_size, input.page_token, kPageKind));
  RETURN_IF_ERROR(CheckType(input.type, "type", /*required=*/false));
  if (!input.family.empty()) {
    const auto& families = SupportedFamilies();
    if (std::find(families.begin(), families.end(), input.family) == families.end()) {
      return absl::InvalidArgumentError(absl::StrCat("family '", input.family, "' is not one of ",
                                                     absl::StrJoin(families, ", ")));
    }
  }
  if (!input.model.empty()) RETURN_IF_ERROR(CheckReference(input.model, "model"));

  ConfigListFilter filter;
  if (!page.after.empty()) {
    RETURN_IF_ERROR(ParseTimeIdKey(page.after, &filter.after_create_us, &filter.after_id));
  }
  filter.type = input.type;
  filter.family = input.family;
  filter.limit = page.limit + 1;  // one more tells whether another page exists

  ConfigPage out;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    if (!input.model.empty()) {
      ASSIGN_OR_RETURN(const ModelRecord found_model, FindModelByRef(tx, input.model));
      const ModelRecord* model = &found_model;
      // Both filters apply: a family other than the model's matches nothing.
      if (!filter.family.empty() && filter.family != model->family) return absl::OkStatus();
      filter.family = model->family;
      filter.defaults_only = true;
    }
    out.configs = configs_.List(tx, filter);
    return absl::OkStatus();
  }));
  if (static_cast<int>(out.configs.size()) > page.limit) {
    out.configs.resize(page.limit);
    const ConfigRecord& last = out.configs.back();
    out.next_page_token = MakePageToken(kPageKind, TimeIdKey(last.create_time, last.id));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ConfigService::RemoveConfig(const std::string& ref, bool force) {
  RETURN_IF_ERROR(CheckReference(ref, "config"));
  std::vector<std::string> removed;
  RETURN_IF_ERROR(store_.InTransaction([&](Tx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(ConfigRecord config, FindConfig(tx, ref));
    if (config.is_default) {
      return absl::FailedPreconditionError(absl::StrCat(
          "config ", Label(config), " is the ", config.family, " default ", config.type,
          " config; per-family defaults cannot be removed (add your own config instead)"));
    }
    JobUsersFilter users;
    users.config_id = config.id;
    RETURN_IF_ERROR(RemoveJobsUsing(tx, users, force, absl::StrCat("config ", Label(config)), &removed));
    configs_.Delete(tx, config.id);
    return absl::OkStatus();
  }));
  return removed;
}

}  // namespace tuneforge
