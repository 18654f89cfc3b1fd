// gRPC handler of tuneforge.v1.Models: proto <-> records, and the service's status as the RPC's status.
#ifndef TUNEFORGE_SERVICES_METADATA_MODELS_HANDLER_H_
#define TUNEFORGE_SERVICES_METADATA_MODELS_HANDLER_H_

#include <functional>

#include "services/metadata/export_service.h"
#include "services/metadata/model_service.h"
#include "tuneforge/v1/models.grpc.pb.h"

namespace tuneforge {

class ModelsHandler final : public v1::Models::Service {
 public:
  // `job_queued` is called after an export job is queued (wakes trainers waiting for a lease).
  ModelsHandler(ModelService& service, ExportService& exports, std::function<void()> job_queued)
      : service_(service), exports_(exports), job_queued_(std::move(job_queued)) {}

  grpc::Status AddModel(grpc::ServerContext*, const v1::AddModelRequest*, v1::AddModelResponse*) override;
  grpc::Status GetModel(grpc::ServerContext*, const v1::GetModelRequest*, v1::GetModelResponse*) override;
  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest*, v1::ListModelsResponse*) override;
  grpc::Status ListModelRevisions(grpc::ServerContext*, const v1::ListModelRevisionsRequest*,
                                  v1::ListModelRevisionsResponse*) override;
  grpc::Status RemoveModel(grpc::ServerContext*, const v1::RemoveModelRequest*, v1::RemoveModelResponse*) override;
  grpc::Status ExportModel(grpc::ServerContext*, const v1::ExportModelRequest*, v1::ExportModelResponse*) override;
  grpc::Status GetModelExport(grpc::ServerContext*, const v1::GetModelExportRequest*,
                              v1::GetModelExportResponse*) override;
  grpc::Status ListModelExports(grpc::ServerContext*, const v1::ListModelExportsRequest*,
                                v1::ListModelExportsResponse*) override;

 private:
  ModelService& service_;
  ExportService& exports_;
  std::function<void()> job_queued_;
};

// Conversions shared with other handlers.
void ToProto(ModelRevisionRecord record, v1::ModelRevision* out);
void ToProto(ModelRecord record, v1::Model* out);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_MODELS_HANDLER_H_
