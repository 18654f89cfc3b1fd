// Admin handler: the document travels as a string both ways, whole or in DatabaseChunk pieces; row counts become the
// response maps.
#include "services/metadata/admin_handler.h"

#include <utility>

#include "common/grpc_status.h"
#include "services/metadata/auth.h"

namespace tuneforge {

grpc::Status AdminHandler::ExportDatabase(grpc::ServerContext* context, const v1::ExportDatabaseRequest*,
                                          v1::ExportDatabaseResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kAdmin); !denied.ok()) return denied;
  absl::StatusOr<DatabaseExport> exported = service_.ExportDatabase();
  if (!exported.ok()) return ToGrpcStatus(exported.status());
  response->set_document(std::move(exported->document));
  for (const auto& [table, count] : exported->row_counts) (*response->mutable_row_counts())[table] = count;
  return grpc::Status::OK;
}

grpc::Status AdminHandler::ImportDatabase(grpc::ServerContext* context, const v1::ImportDatabaseRequest* request,
                                          v1::ImportDatabaseResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kAdmin); !denied.ok()) return denied;
  absl::StatusOr<std::map<std::string, int64_t>> counts = service_.ImportDatabase(request->document());
  if (!counts.ok()) return ToGrpcStatus(counts.status());
  for (const auto& [table, count] : *counts) (*response->mutable_row_counts())[table] = count;
  return grpc::Status::OK;
}

grpc::Status AdminHandler::ExportDatabaseStream(grpc::ServerContext* context, const v1::ExportDatabaseStreamRequest*,
                                                grpc::ServerWriter<v1::ExportDatabaseStreamResponse>* writer) {
  if (grpc::Status denied = Authorize(context, Role::kAdmin); !denied.ok()) return denied;
  absl::StatusOr<DatabaseExport> exported = service_.ExportDatabase();
  if (!exported.ok()) return ToGrpcStatus(exported.status());
  const std::string& document = exported->document;
  for (size_t offset = 0; offset < document.size(); offset += kDatabaseChunkBytes) {
    v1::ExportDatabaseStreamResponse response;
    v1::DatabaseChunk* chunk = response.mutable_chunk();
    if (offset == 0) {
      chunk->set_document_bytes(static_cast<int64_t>(document.size()));
      for (const auto& [table, count] : exported->row_counts) (*chunk->mutable_row_counts())[table] = count;
    }
    chunk->set_data(document.substr(offset, kDatabaseChunkBytes));
    if (!writer->Write(response)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading the export");
    }
  }
  return grpc::Status::OK;
}

grpc::Status AdminHandler::ImportDatabaseStream(grpc::ServerContext* context,
                                                grpc::ServerReader<v1::ImportDatabaseStreamRequest>* reader,
                                                v1::ImportDatabaseStreamResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kAdmin); !denied.ok()) return denied;
  StreamedDocument document = service_.NewStreamedDocument();
  v1::ImportDatabaseStreamRequest request;
  while (reader->Read(&request)) {
    const absl::Status added = document.Add(request.chunk().document_bytes(), request.chunk().data());
    if (!added.ok()) return ToGrpcStatus(added);
  }
  absl::StatusOr<std::string> whole = std::move(document).Finish();
  if (!whole.ok()) return ToGrpcStatus(whole.status());
  absl::StatusOr<std::map<std::string, int64_t>> counts = service_.ImportDatabase(*whole);
  if (!counts.ok()) return ToGrpcStatus(counts.status());
  for (const auto& [table, count] : *counts) (*response->mutable_row_counts())[table] = count;
  return grpc::Status::OK;
}

}  // namespace tuneforge
