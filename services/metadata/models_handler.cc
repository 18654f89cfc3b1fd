// tuneforge.v1.Models over ModelService.
#include "services/metadata/models_handler.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "services/metadata/auth.h"
#include "services/metadata/proto_convert.h"

namespace tuneforge {

// The records are taken by value so that callers done with them can move their strings into the message.
void ToProto(ModelRevisionRecord r, v1::ModelRevision* out) {
  out->set_id(std::move(r.id));
  out->set_model_id(std::move(r.model_id));
  out->set_revision_number(r.revision_number);
  out->set_requested_revision(std::move(r.requested_revision));
  out->set_commit_sha(std::move(r.commit_sha));
  out->set_fingerprint(std::move(r.fingerprint));
  out->set_family(std::move(r.family));
  out->set_architecture(std::move(r.architecture));
  ToProto(std::move(r.files), out->mutable_files());
  out->mutable_bos_token_ids()->Add(r.bos_token_ids.begin(), r.bos_token_ids.end());
  out->mutable_eos_token_ids()->Add(r.eos_token_ids.begin(), r.eos_token_ids.end());
  out->set_parameter_count(r.parameter_count);
  out->set_config_json(std::move(r.config_json));
  ToProto(r.create_time, out->mutable_create_time());
}

void ToProto(ModelRecord m, v1::Model* out) {
  out->set_id(std::move(m.id));
  out->set_name(std::move(m.name));
  out->set_description(std::move(m.description));
  out->set_source_type(SourceTypeToProto(m.source_type));
  out->set_source(std::move(m.source));
  out->set_family(std::move(m.family));
  out->set_revision_count(m.revision_count);
  if (m.latest_revision.has_value()) ToProto(*std::move(m.latest_revision), out->mutable_latest_revision());
  ToProto(m.create_time, out->mutable_create_time());
  ToProto(m.update_time, out->mutable_update_time());
}

grpc::Status ModelsHandler::AddModel(grpc::ServerContext* context, const v1::AddModelRequest* request,
                                     v1::AddModelResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  AddModelInput input;
  input.name = request->name();
  input.description = request->description();
  if (request->has_huggingface()) {
    input.source_type = "huggingface";
    input.repo_id = request->huggingface().repo_id();
    input.revision = request->huggingface().revision();
    input.token = request->huggingface().token();
  } else if (request->has_local()) {
    input.source_type = "local";
    input.path = request->local().path();
  }
  absl::StatusOr<AddModelResult> result = service_.AddModel(input);
  if (!result.ok()) return ToGrpcStatus(result.status());
  ToProto(std::move(result->model), response->mutable_model());
  ToProto(std::move(result->revision), response->mutable_revision());
  response->set_outcome(ToProto(result->outcome));
  return grpc::Status::OK;
}

grpc::Status ModelsHandler::GetModel(grpc::ServerContext* context, const v1::GetModelRequest* request,
                                     v1::GetModelResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<ModelRecord> model = service_.GetModel(request->model());
  if (!model.ok()) return ToGrpcStatus(model.status());
  ToProto(*std::move(model), response->mutable_model());
  return grpc::Status::OK;
}

grpc::Status ModelsHandler::ListModels(grpc::ServerContext* context, const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  ListModelsInput input;
  input.page_size = request->page_size();
  input.page_token = request->page_token();
  input.name_prefix = request->name_prefix();
  input.family = request->family();
  absl::StatusOr<std::string> source_type = SourceTypeFromProto(request->source_type(), "source_type");
  if (!source_type.ok()) return ToGrpcStatus(source_type.status());
  input.source_type = *source_type;
  absl::StatusOr<ModelPage> page = service_.ListModels(input);
  if (!page.ok()) return ToGrpcStatus(page.status());
  response->mutable_models()->Reserve(static_cast<int>(page->models.size()));
  for (ModelRecord& m : page->models) ToProto(std::move(m), response->add_models());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status ModelsHandler::ListModelRevisions(grpc::ServerContext* context, const v1::ListModelRevisionsRequest* request,
                                               v1::ListModelRevisionsResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<ModelRevisionPage> page =
      service_.ListModelRevisions(request->model(), request->page_size(), request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (ModelRevisionRecord& r : page->revisions) ToProto(std::move(r), response->add_revisions());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status ModelsHandler::RemoveModel(grpc::ServerContext* context, const v1::RemoveModelRequest* request,
                                        v1::RemoveModelResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  absl::StatusOr<std::vector<std::string>> removed = service_.RemoveModel(request->model(), request->force());
  if (!removed.ok()) return ToGrpcStatus(removed.status());
  for (const std::string& r : *removed) response->add_removed_dependents(r);
  return grpc::Status::OK;
}

namespace {

v1::ExportState ExportStateToProto(const std::string& state) {
  if (state == "queued") return v1::EXPORT_STATE_QUEUED;
  if (state == "running") return v1::EXPORT_STATE_RUNNING;
  if (state == "cancelling") return v1::EXPORT_STATE_CANCELLING;
  if (state == "succeeded") return v1::EXPORT_STATE_SUCCEEDED;
  if (state == "failed") return v1::EXPORT_STATE_FAILED;
  if (state == "cancelled") return v1::EXPORT_STATE_CANCELLED;
  return v1::EXPORT_STATE_UNSPECIFIED;
}

void ExportToProto(const ModelExportRecord& e, v1::ModelExport* out) {
  out->set_id(e.id);
  out->set_model_id(e.model_id);
  out->set_model_revision_id(e.model_revision_id);
  out->set_adapter_id(e.adapter_id);
  out->set_type(e.type == "merged" ? v1::EXPORT_TYPE_MERGED : v1::EXPORT_TYPE_ADAPTER);
  out->set_destination_path(e.destination_path);
  out->set_exported_model_name(e.exported_model_name);
  out->set_state(ExportStateToProto(e.state));
  ToProto(e.create_time, out->mutable_create_time());
  out->set_job_id(e.job_id);
  out->set_dtype(e.dtype);
  out->set_max_shard_size(e.max_shard_size);
  out->set_overwrite(e.overwrite);
  out->set_exported_model_id(e.exported_model_id);
  out->set_exported_model_revision_id(e.exported_model_revision_id);
  out->set_error_code(e.error_code);
  out->set_error_message(e.error_message);
}

}  // namespace

grpc::Status ModelsHandler::ExportModel(grpc::ServerContext* context, const v1::ExportModelRequest* request,
                                        v1::ExportModelResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kOperator); !denied.ok()) return denied;
  ExportModelInput input;
  input.model = request->model();
  input.revision_id = request->revision_id();
  input.adapter = request->adapter();
  switch (request->type()) {
    case v1::EXPORT_TYPE_UNSPECIFIED: break;
    case v1::EXPORT_TYPE_MERGED: input.type = "merged"; break;
    case v1::EXPORT_TYPE_ADAPTER: input.type = "adapter"; break;
    default:
      return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
          "type ", request->type(), " is not an export type; use EXPORT_TYPE_MERGED or EXPORT_TYPE_ADAPTER")));
  }
  input.destination_path = request->destination_path();
  input.exported_model_name = request->exported_model_name();
  input.dtype = request->dtype();
  input.max_shard_size = request->max_shard_size();
  input.overwrite = request->overwrite();
  input.job_name = request->job_name();
  absl::StatusOr<ModelExportRecord> e = exports_.StartExport(input);
  if (!e.ok()) return ToGrpcStatus(e.status());
  if (job_queued_) job_queued_();
  ExportToProto(*e, response->mutable_export_());
  return grpc::Status::OK;
}

grpc::Status ModelsHandler::GetModelExport(grpc::ServerContext* context, const v1::GetModelExportRequest* request,
                                           v1::GetModelExportResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  absl::StatusOr<ModelExportRecord> e = exports_.GetExport(request->id());
  if (!e.ok()) return ToGrpcStatus(e.status());
  ExportToProto(*e, response->mutable_export_());
  return grpc::Status::OK;
}

grpc::Status ModelsHandler::ListModelExports(grpc::ServerContext* context, const v1::ListModelExportsRequest* request,
                                             v1::ListModelExportsResponse* response) {
  if (grpc::Status denied = Authorize(context, Role::kViewer); !denied.ok()) return denied;
  ListExportsInput input;
  input.page_size = request->page_size();
  input.page_token = request->page_token();
  input.model = request->model();
  input.adapter = request->adapter();
  absl::StatusOr<ExportPage> page = exports_.ListExports(input);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const ModelExportRecord& e : page->exports) ExportToProto(e, response->add_exports());
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

}  // namespace tuneforge
