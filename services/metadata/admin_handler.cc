// Admin handler: the document travels as a string both ways; row counts become the response maps.
#include "services/metadata/admin_handler.h"

#include <utility>

#include "common/grpc_status.h"

namespace tuneforge {

grpc::Status AdminHandler::ExportDatabase(grpc::ServerContext*, const v1::ExportDatabaseRequest*,
                                          v1::ExportDatabaseResponse* response) {
  absl::StatusOr<DatabaseExport> exported = service_.ExportDatabase();
  if (!exported.ok()) return ToGrpcStatus(exported.status());
  response->set_document(std::move(exported->document));
  for (const auto& [table, count] : exported->row_counts) (*response->mutable_row_counts())[table] = count;
  return grpc::Status::OK;
}

grpc::Status AdminHandler::ImportDatabase(grpc::ServerContext*, const v1::ImportDatabaseRequest* request,
                                          v1::ImportDatabaseResponse* response) {
  absl::StatusOr<std::map<std::string, int64_t>> counts = service_.ImportDatabase(request->document());
  if (!counts.ok()) return ToGrpcStatus(counts.status());
  for (const auto& [table, count] : *counts) (*response->mutable_row_counts())[table] = count;
  return grpc::Status::OK;
}

}  // namespace tuneforge
