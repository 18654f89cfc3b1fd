// gRPC handler of tuneforge.v1.Lineage: proto <-> lineage graph, and the service's status as the RPC's status.
#ifndef TUNEFORGE_SERVICES_METADATA_LINEAGE_HANDLER_H_
#define TUNEFORGE_SERVICES_METADATA_LINEAGE_HANDLER_H_

#include "services/metadata/lineage_service.h"
#include "tuneforge/v1/lineage.grpc.pb.h"

namespace tuneforge {

class LineageHandler final : public v1::Lineage::Service {
 public:
  explicit LineageHandler(LineageService& service) : service_(service) {}

  grpc::Status GetLineage(grpc::ServerContext*, const v1::GetLineageRequest*, v1::GetLineageResponse*) override;

 private:
  LineageService& service_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_LINEAGE_HANDLER_H_
