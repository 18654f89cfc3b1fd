// gRPC handler of tuneforge.v1.Admin: database export and import requests <-> AdminService.
#ifndef TUNEFORGE_SERVICES_METADATA_ADMIN_HANDLER_H_
#define TUNEFORGE_SERVICES_METADATA_ADMIN_HANDLER_H_

#include "services/metadata/admin_service.h"
#include "tuneforge/v1/admin.grpc.pb.h"

namespace tuneforge {

class AdminHandler final : public v1::Admin::Service {
 public:
  explicit AdminHandler(AdminService& service) : service_(service) {}

  grpc::Status ExportDatabase(grpc::ServerContext* context, const v1::ExportDatabaseRequest* request,
                              v1::ExportDatabaseResponse* response) override;
  grpc::Status ImportDatabase(grpc::ServerContext* context, const v1::ImportDatabaseRequest* request,
                              v1::ImportDatabaseResponse* response) override;
  grpc::Status ExportDatabaseStream(grpc::ServerContext* context, const v1::ExportDatabaseStreamRequest* request,
                                    grpc::ServerWriter<v1::ExportDatabaseStreamResponse>* writer) override;
  grpc::Status ImportDatabaseStream(grpc::ServerContext* context,
                                    grpc::ServerReader<v1::ImportDatabaseStreamRequest>* reader,
                                    v1::ImportDatabaseStreamResponse* response) override;

 private:
  AdminService& service_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_ADMIN_HANDLER_H_
