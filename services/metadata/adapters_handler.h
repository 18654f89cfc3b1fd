// gRPC handler of tuneforge.v1.Adapters: proto <-> records, and the service's status as the RPC's status.
#ifndef TUNEFORGE_SERVICES_METADATA_ADAPTERS_HANDLER_H_
#define TUNEFORGE_SERVICES_METADATA_ADAPTERS_HANDLER_H_

#include "services/metadata/adapter_service.h"
#include "tuneforge/v1/adapters.grpc.pb.h"

namespace tuneforge {

class AdaptersHandler final : public v1::Adapters::Service {
 public:
  explicit AdaptersHandler(AdapterService& service) : service_(service) {}

  grpc::Status AddAdapter(grpc::ServerContext*, const v1::AddAdapterRequest*, v1::AddAdapterResponse*) override;
  grpc::Status GetAdapter(grpc::ServerContext*, const v1::GetAdapterRequest*, v1::GetAdapterResponse*) override;
  grpc::Status ListAdapters(grpc::ServerContext*, const v1::ListAdaptersRequest*, v1::ListAdaptersResponse*) override;
  grpc::Status RemoveAdapter(grpc::ServerContext*, const v1::RemoveAdapterRequest*,
                             v1::RemoveAdapterResponse*) override;

 private:
  AdapterService& service_;
};

// Conversion shared with other handlers (jobs report the adapter they produced).
void ToProto(const AdapterRecord& record, v1::Adapter* out);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_ADAPTERS_HANDLER_H_
