// gRPC handler of tuneforge.v1.Datasets: proto <-> records, and the service's status as the RPC's status.
#ifndef TUNEFORGE_SERVICES_METADATA_DATASETS_HANDLER_H_
#define TUNEFORGE_SERVICES_METADATA_DATASETS_HANDLER_H_

#include "services/metadata/dataset_service.h"
#include "tuneforge/v1/datasets.grpc.pb.h"

namespace tuneforge {

class DatasetsHandler final : public v1::Datasets::Service {
 public:
  explicit DatasetsHandler(DatasetService& service) : service_(service) {}

  grpc::Status AddDataset(grpc::ServerContext*, const v1::AddDatasetRequest*, v1::AddDatasetResponse*) override;
  grpc::Status GetDataset(grpc::ServerContext*, const v1::GetDatasetRequest*, v1::GetDatasetResponse*) override;
  grpc::Status ListDatasets(grpc::ServerContext*, const v1::ListDatasetsRequest*, v1::ListDatasetsResponse*) override;
  grpc::Status ListDatasetRevisions(grpc::ServerContext*, const v1::ListDatasetRevisionsRequest*,
                                    v1::ListDatasetRevisionsResponse*) override;
  grpc::Status GetDatasetPreview(grpc::ServerContext*, const v1::GetDatasetPreviewRequest*,
                                 v1::GetDatasetPreviewResponse*) override;
  grpc::Status RemoveDataset(grpc::ServerContext*, const v1::RemoveDatasetRequest*,
                             v1::RemoveDatasetResponse*) override;

 private:
  DatasetService& service_;
};

// Conversions shared with other handlers.
void ToProto(const DatasetRevisionRecord& record, v1::DatasetRevision* out);
void ToProto(const DatasetRecord& record, v1::Dataset* out);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_DATASETS_HANDLER_H_
