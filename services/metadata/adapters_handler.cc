// tuneforge.v1.Adapters over AdapterService.
#include "services/metadata/adapters_handler.h"

#include "common/grpc_status.h"
#include "services/metadata/auth.h"
#include "services/metadata/proto_convert.h"

namespace tuneforge {

void ToProto(const AdapterRecord& a, v1::Adapter* out) {
  out->set_id(a.id);
  out->set_name(a.name);
  out->set_description(a.description);
  out->set_source_type(SourceTypeToProto(a.source_type));
  out->set_source(a.source);
  out->set_commit_sha(a.commit_sha);
  out->set_model_id(a.model_id);
  out->set_model_revision_id(a.model_revision_id);
  out->set_job_id(a.job_id);
  out->set_peft_type(a.peft_type);
  out->set_rank(a.rank);
  out->set_alpha(a.alpha);
  for (const std::string& m : a.target_modules) out->add_target_modules(m);
  out->set_use_rslora(a.use_rslora);
  out->set_fingerprint(a.fingerprint);
  ToProto(a.files, out->mutable_files());
  ToProto(a.create_time, out->mutable_create_time());
}

grpc::Status AdaptersHandler::AddAdapter(grpc::ServerContext* context, const v1::AddAdapterRequest* request,
                                         v1::AddAdapterResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  AddAdapterInput input;
  input.name = request->name();
  input.description = request->description();
  input.model = request->model();
  input.model_revision_id = request->model_revision_id();
  if (request->has_huggingface()) {
    input.source_type = "huggingface";
    input.repo_id = request->huggingface().repo_id();
    input.revision = request->huggingface().revision();
    input.token = request->huggingface().token();
  } else if (request->has_local()) {
    input.source_type = "local";
    input.path = request->local().path();
  }
  absl::StatusOr<AddAdapterResult> result = service_.AddAdapter(input);
  if (!result.ok()) return ToGrpcStatus(result.status());
  ToProto(result->adapter, response->mutable_adapter());
  response->set_outcome(ToProto(result->outcome));
  return grpc::Status::OK;
}

grpc::Status AdaptersHandler::GetAdapter(grpc::ServerContext* context, const v1::GetAdapterRequest* request,
                                         v1::GetAdapterResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<AdapterRecord> adapter = service_.GetAdapter(request->adapter());
  if (!adapter.ok()) return ToGrpcStatus(adapter.status());
  ToProto(*adapter, response->mutable_adapter());
  return grpc::Status::OK;
}

grpc::Status AdaptersHandler::ListAdapters(grpc::ServerContext* context, const v1::ListAdaptersRequest* request,
                                           v1::ListAdaptersResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  ListAdaptersInput input;
  input.page_size = request->page_size();
  input.page_token = request->page_token();
  input.name_prefix = request->name_prefix();
  input.model = request->model();
  absl::StatusOr<std::string> source_type = SourceTypeFromProto(request->source_type(), "source_type");
  if (!source_type.ok()) return ToGrpcStatus(source_type.status());
  input.source_type = *source_type;
  absl::StatusOr<AdapterPage> page = service_.ListAdapters(input);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const AdapterRecord& a : page->adapters) ToProto(a, response->add_adapters());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status AdaptersHandler::RemoveAdapter(grpc::ServerContext* context, const v1::RemoveAdapterRequest* request,
                                            v1::RemoveAdapterResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  absl::StatusOr<std::vector<std::string>> removed = service_.RemoveAdapter(request->adapter(), request->force());
  if (!removed.ok()) return ToGrpcStatus(removed.status());
  for (const std::string& r : *removed) response->add_removed_dependents(r);
  return grpc::Status::OK;
}

}  // namespace tuneforge
