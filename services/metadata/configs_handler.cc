// tuneforge.v1.Configs over ConfigService; content travels as google.protobuf.Struct and is JSON inside.
#include "services/metadata/configs_handler.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "services/metadata/auth.h"
#include "services/metadata/proto_convert.h"

namespace tuneforge {

v1::ConfigType ConfigTypeToProto(const std::string& type) {
  if (type == "lora") return v1::CONFIG_TYPE_LORA;
  if (type == "training") return v1::CONFIG_TYPE_TRAINING;
  if (type == "generation") return v1::CONFIG_TYPE_GENERATION;
  if (type == "quantization") return v1::CONFIG_TYPE_QUANTIZATION;
  return v1::CONFIG_TYPE_UNSPECIFIED;
}

absl::StatusOr<std::string> ConfigTypeFromProto(int value, const std::string& field) {
  switch (value) {
    case v1::CONFIG_TYPE_UNSPECIFIED: return std::string();
    case v1::CONFIG_TYPE_LORA: return std::string("lora");
    case v1::CONFIG_TYPE_TRAINING: return std::string("training");
    case v1::CONFIG_TYPE_GENERATION: return std::string("generation");
    case v1::CONFIG_TYPE_QUANTIZATION: return std::string("quantization");
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          field, " ", value, " is not a config type; use one of lora, training, generation, quantization "
          "(CONFIG_TYPE_LORA, CONFIG_TYPE_TRAINING, CONFIG_TYPE_GENERATION, CONFIG_TYPE_QUANTIZATION)"));
  }
}

namespace {

// JSON has no NaN or infinity (the JSON printer would turn them into strings such as "NaN").
absl::Status CheckFinite(const google::protobuf::Value& value, const std::string& path) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      if (!std::isfinite(value.number_value())) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, " is NaN or infinite; JSON numbers must be finite"));
      }
      return absl::OkStatus();
    case google::protobuf::Value::kListValue:
      for (int i = 0; i < value.list_value().values_size(); ++i) {
        absl::Status s = CheckFinite(value.list_value().values(i), absl::StrCat(path, "[", i, "]"));
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    case google::protobuf::Value::kStructValue:
      for (const auto& [key, v] : value.struct_value().fields()) {
        absl::Status s = CheckFinite(v, absl::StrCat(path, ".", key.size() > 80 ? key.substr(0, 77) + "..." : key));
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

}  // namespace

absl::Status ToProto(const ConfigRecord& c, v1::Config* out) {
  out->set_id(c.id);
  out->set_name(c.name);
  out->set_description(c.description);
  out->set_type(ConfigTypeToProto(c.type));
  const auto parsed = google::protobuf::util::JsonStringToMessage(c.content, out->mutable_content());
  if (!parsed.ok()) {
    return absl::InternalError(absl::StrCat("stored content of config ", c.id, " is not a JSON object: ",
                                            std::string(parsed.message())));
  }
  out->set_fingerprint(c.fingerprint);
  out->set_family(c.family);
  out->set_is_default(c.is_default);
  ToProto(c.create_time, out->mutable_create_time());
  return absl::OkStatus();
}

grpc::Status ConfigsHandler::AddConfig(grpc::ServerContext* context, const v1::AddConfigRequest* request,
                                       v1::AddConfigResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  AddConfigInput input;
  input.name = request->name();
  input.description = request->description();
  absl::StatusOr<std::string> type = ConfigTypeFromProto(request->type(), "type");
  if (!type.ok()) return ToGrpcStatus(type.status());
  input.type = *type;
  google::protobuf::Value content;
  *content.mutable_struct_value() = request->content();
  absl::Status finite = CheckFinite(content, "content");
  if (!finite.ok()) return ToGrpcStatus(finite);
  const auto printed = google::protobuf::util::MessageToJsonString(request->content(), &input.content_json);
  if (!printed.ok()) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "content cannot be read as JSON (", std::string(printed.message()), "); send finite numbers only")));
  }
  absl::StatusOr<AddConfigResult> result = service_.AddConfig(input);
  if (!result.ok()) return ToGrpcStatus(result.status());
  absl::Status converted = ToProto(result->config, response->mutable_config());
  if (!converted.ok()) return ToGrpcStatus(converted);
  response->set_outcome(ToProto(result->outcome));
  response->set_ignored_name(result->ignored_name);
  return grpc::Status::OK;
}

grpc::Status ConfigsHandler::GetConfig(grpc::ServerContext* context, const v1::GetConfigRequest* request,
                                       v1::GetConfigResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<ConfigRecord> config = service_.GetConfig(request->config());
  if (!config.ok()) return ToGrpcStatus(config.status());
  return ToGrpcStatus(ToProto(*config, response->mutable_config()));
}

grpc::Status ConfigsHandler::ListConfigs(grpc::ServerContext* context, const v1::ListConfigsRequest* request,
                                         v1::ListConfigsResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  ListConfigsInput input;
  input.page_size = request->page_size();
  input.page_token = request->page_token();
  absl::StatusOr<std::string> type = ConfigTypeFromProto(request->type(), "type");
  if (!type.ok()) return ToGrpcStatus(type.status());
  input.type = *type;
  input.model = request->model();
  input.family = request->family();
  absl::StatusOr<ConfigPage> page = service_.ListConfigs(input);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const ConfigRecord& c : page->configs) {
    absl::Status converted = ToProto(c, response->add_configs());
    if (!converted.ok()) return ToGrpcStatus(converted);
  }
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status ConfigsHandler::RemoveConfig(grpc::ServerContext* context, const v1::RemoveConfigRequest* request,
                                          v1::RemoveConfigResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  absl::StatusOr<std::vector<std::string>> removed = service_.RemoveConfig(request->config(), request->force());
  if (!removed.ok()) return ToGrpcStatus(removed.status());
  for (const std::string& r : *removed) response->add_removed_dependents(r);
  return grpc::Status::OK;
}

}  // namespace tuneforge
