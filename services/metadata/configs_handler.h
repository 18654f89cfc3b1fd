// gRPC handler of tuneforge.v1.Configs: proto <-> records, and the service's status as the RPC's status.
#ifndef TUNEFORGE_SERVICES_METADATA_CONFIGS_HANDLER_H_
#define TUNEFORGE_SERVICES_METADATA_CONFIGS_HANDLER_H_

#include "services/metadata/config_service.h"
#include "tuneforge/v1/configs.grpc.pb.h"

namespace tuneforge {

class ConfigsHandler final : public v1::Configs::Service {
 public:
  explicit ConfigsHandler(ConfigService& service) : service_(service) {}

  grpc::Status AddConfig(grpc::ServerContext*, const v1::AddConfigRequest*, v1::AddConfigResponse*) override;
  grpc::Status GetConfig(grpc::ServerContext*, const v1::GetConfigRequest*, v1::GetConfigResponse*) override;
  grpc::Status ListConfigs(grpc::ServerContext*, const v1::ListConfigsRequest*, v1::ListConfigsResponse*) override;
  grpc::Status RemoveConfig(grpc::ServerContext*, const v1::RemoveConfigRequest*, v1::RemoveConfigResponse*) override;

 private:
  ConfigService& service_;
};

// Conversions shared with other handlers (jobs name the configs they use).
absl::Status ToProto(const ConfigRecord& record, v1::Config* out);
v1::ConfigType ConfigTypeToProto(const std::string& type);
// "" for CONFIG_TYPE_UNSPECIFIED; INVALID_ARGUMENT naming `field` for values outside the enum.
absl::StatusOr<std::string> ConfigTypeFromProto(int value, const std::string& field);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_CONFIGS_HANDLER_H_
